package fault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Proc is one OS process the fault run owns and may kill, pause and start
// again with the same command line (same port, same replica id, same data).
type Proc struct {
	Name string
	Path string
	Args []string
	Env  []string
	// Ready reports whether the process serves; Start waits for it.
	Ready func(ctx context.Context) error

	owner *Procs
	mu    sync.Mutex
	cmd   *exec.Cmd
	exit  chan struct{}
}

// Procs tracks every process started, so that every one is ended however
// the run ends.
type Procs struct {
	LogDir string

	mu    sync.Mutex
	procs []*Proc
	pids  []int
}

// Add registers p for Start.
func (ps *Procs) Add(p *Proc) *Proc {
	p.owner = ps
	ps.mu.Lock()
	ps.procs = append(ps.procs, p)
	ps.mu.Unlock()
	return p
}

// Pids is every pid ever started, for a check that none is left.
func (ps *Procs) Pids() []int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return append([]int(nil), ps.pids...)
}

// Start starts p and waits until it is ready.
func (p *Proc) Start(ctx context.Context) error {
	log, err := os.OpenFile(p.owner.LogDir+"/"+p.Name+".log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("log of %s: %w", p.Name, err)
	}
	defer log.Close() // the child holds its own copy
	fmt.Fprintf(log, "--- start %s %v\n", time.Now().Format(time.StampMilli), p.Args)
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so a terminal's Ctrl-C reaches only us and we
	// end it; and the kernel kills it if we die without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.owner.mu.Lock()
	if err := cmd.Start(); err != nil {
		p.owner.mu.Unlock()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.owner.pids = append(p.owner.pids, cmd.Process.Pid)
	p.owner.mu.Unlock()
	exit := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exit) }()
	p.mu.Lock()
	p.cmd, p.exit = cmd, exit
	p.mu.Unlock()
	if p.Ready == nil {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for {
		err := p.Ready(rctx)
		if err == nil {
			return nil
		}
		select {
		case <-exit:
			return fmt.Errorf("%s exited before it was ready (see %s/%s.log)", p.Name, p.owner.LogDir, p.Name)
		case <-rctx.Done():
			return fmt.Errorf("%s not ready: %w (last: %v)", p.Name, rctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Signal sends sig to p's process, if it runs.
func (p *Proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	cmd, exit := p.cmd, p.exit
	p.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("%s is not running", p.Name)
	}
	select {
	case <-exit:
		return fmt.Errorf("%s has exited", p.Name)
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s to %s: %w", sig, p.Name, err)
	}
	return nil
}

// Kill SIGKILLs p and waits until it is gone.
func (p *Proc) Kill() error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	p.mu.Lock()
	exit := p.exit
	p.mu.Unlock()
	<-exit
	return nil
}

// stop ends p: SIGCONT (it may be paused), SIGTERM, and SIGKILL after grace.
func (p *Proc) stop(grace time.Duration) {
	p.mu.Lock()
	cmd, exit := p.cmd, p.exit
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exit:
	case <-time.After(grace):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exit
	}
}

// StopAll ends every process, services first, then what they depend on
// (the order they were added in, reversed).
func (ps *Procs) StopAll(grace time.Duration) {
	ps.mu.Lock()
	procs := append([]*Proc(nil), ps.procs...)
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for i := len(procs) - 1; i >= 0; i-- {
		wg.Go(func() { procs[i].stop(grace) })
	}
	wg.Wait()
}

// Alive reports whether pid still exists (a zombie counts as gone only
// once reaped, which Start's goroutine does).
func Alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func httpReady(addr string) func(ctx context.Context) error {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	}
}

func tcpReady(addr string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

func redisReady(addr string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		defer c.Close()
		return c.Ping(ctx).Err()
	}
}

// freeAddr is a loopback address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
