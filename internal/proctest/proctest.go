// Package proctest runs hexride's commands as OS processes in tests, the way
// production runs them: built once per test binary, started with their
// settings in the environment on free loopback ports, ended by pid.
package proctest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildMu sync.Mutex
	built   = map[string]string{}
	binDir  string
)

// Build compiles the main package pkg (an import path) once per test binary,
// without the race detector (the services are not what a test races), and
// returns the binary's path.
func Build(tb testing.TB, pkg string) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := built[pkg]; ok {
		return bin
	}
	if binDir == "" {
		d, err := os.MkdirTemp("", "hexride-bin-")
		if err != nil {
			tb.Fatal(err)
		}
		binDir = d // left for the OS: other tests of the binary reuse it
	}
	bin := filepath.Join(binDir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	built[pkg] = bin
	return bin
}

// FreeAddr returns a loopback host:port nobody listens on right now.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// Proc is one started process.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	out  *SyncBuffer
	done chan struct{}
}

// Start runs bin with env added to the environment. The process is killed
// when the test ends if it is still running; its output is logged if the
// test failed.
func Start(tb testing.TB, name, bin string, env []string, args ...string) *Proc {
	tb.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out := &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.Kill()
		if tb.Failed() {
			tb.Logf("output of %s (pid %d):\n%s", name, cmd.Process.Pid, out.String())
		}
	})
	return p
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Output is what the process has written so far.
func (p *Proc) Output() string { return p.out.String() }

// Kill sends SIGKILL, as a crash would, and waits for the process to end.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to timeout for a graceful exit, then kills.
func (p *Proc) Stop(timeout time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Kill()
	}
}

// WaitReady polls http://addr/readyz until it answers 200, the process
// ends, or timeout passes.
func (p *Proc) WaitReady(tb testing.TB, addr string, timeout time.Duration) {
	tb.Helper()
	if err := p.waitReady(addr, timeout); err != nil {
		tb.Fatalf("%s: %v\n%s", p.Name, err, p.Output())
	}
}

func (p *Proc) waitReady(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("exited before it was ready")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				cancel()
				return nil
			}
			last = fmt.Sprintf("%d %s", res.StatusCode, b.String())
		} else {
			last = err.Error()
		}
		cancel()
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready at %s within %s: %s", addr, timeout, last)
}

// SyncBuffer is a bytes.Buffer that a process (or a goroutine) writes
// while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Signal sends sig to the process (SIGSTOP and SIGCONT pause and resume it).
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }
