//go:build linux

package engine

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/berth-dev/berth/internal/engine/monitor"
)

// runLoopbackProxy is the monitor's RoleProxy child: it accepts, on the
// sockets that hold a container's [::] and [::1] TCP ports (fds 3, 4,
// ...), the connections the kernel could not DNAT (those from ::1, which
// the portmap rules leave alone) and forwards each to the container's
// IPv6 address and port (the monitor starts it again with the new address
// at each run). Why a process: docker runs one (docker-proxy) per
// published port for the same reason; here there is one per container
// that publishes on a dual-stack network, and none otherwise.
func runLoopbackProxy() int {
	targets := monitor.ProxyTo()
	if len(targets) == 0 {
		return 1
	}
	for i, to := range targets {
		f := os.NewFile(uintptr(3+i), "published-port")
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return 1
		}
		target, err := netip.ParseAddrPort(to)
		if err != nil {
			return 1
		}
		go proxyLoop(l, target)
	}
	select {} // until the monitor kills us
}

func proxyLoop(l net.Listener, target netip.AddrPort) {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like
			continue
		}
		go func() {
			defer c.Close()
			up, err := net.DialTimeout("tcp", target.String(), 5*time.Second)
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{}, 2)
			pipe := func(dst, src net.Conn) {
				io.Copy(dst, src)
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
				done <- struct{}{}
			}
			go pipe(up, c)
			go pipe(c, up)
			<-done
			<-done
		}()
	}
}
