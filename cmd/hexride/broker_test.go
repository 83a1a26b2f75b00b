package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	ev "github.com/hexride/hexride/events"
)

// TestBrokerKeepsAcknowledgedRecordsAcrossKill runs `hexride broker` as a
// real OS process on a data directory, produces with acks from every
// replica, SIGKILLs it (no chance to flush), restarts it on the same
// directory and port, and reads every acknowledged record back: what lets a
// fault run kill the broker without making acknowledged events disappear.
func TestBrokerKeepsAcknowledgedRecordsAcrossKill(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hexride")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	start := func() *exec.Cmd {
		t.Helper()
		cmd := exec.Command(bin, "broker", "-addr", addr, "-data", dir, "-partitions", "2")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start broker: %v", err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || !strings.Contains(line, "listening on "+addr) {
			t.Fatalf("broker said %q, %v", line, err)
		}
		return cmd
	}

	broker := start()
	w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: ev.TopicTripEvents, RequiredAcks: kafkago.RequireAll,
		Balancer: &kafkago.Hash{}, BatchTimeout: time.Millisecond}
	const n = 200
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for i := range n {
		m := kafkago.Message{Key: []byte("k" + strconv.Itoa(i%7)), Value: []byte(fmt.Sprintf("record-%d", i))}
		if err := w.WriteMessages(ctx, m); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	_ = w.Close()
	if err := broker.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = broker.Wait()

	start()
	got := map[string]bool{}
	for p := range 2 {
		conn, err := kafkago.DialLeader(ctx, "tcp", addr, ev.TopicTripEvents, p)
		if err != nil {
			t.Fatalf("dial partition %d after restart: %v", p, err)
		}
		last, err := conn.ReadLastOffset()
		if err != nil {
			t.Fatalf("last offset of partition %d: %v", p, err)
		}
		if _, err := conn.Seek(0, kafkago.SeekAbsolute); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		batch := conn.ReadBatch(1, 10<<20)
		for off := int64(0); off < last; off++ {
			m, err := batch.ReadMessage()
			if err != nil {
				t.Fatalf("partition %d offset %d of %d: %v", p, off, last, err)
			}
			got[string(m.Value)] = true
		}
		_ = batch.Close()
		_ = conn.Close()
	}
	for i := range n {
		if !got[fmt.Sprintf("record-%d", i)] {
			t.Errorf("acknowledged record-%d is gone after the broker was killed and restarted", i)
		}
	}
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
