//go:build linux

// Command dnslat is the tooling of the name-server benchmark
// (scripts/bench-dns.sh): it asks 127.0.0.11 for a container's name from
// inside another container's network namespace, N times over UDP (a new
// socket each time, as a stub resolver does), and looks a name in the
// host's /etc/hosts up N times with glibc's getaddrinfo (GODEBUG
// netdns=cgo: what a container paid for names from its hosts file before
// there was a name server), and prints the medians and their ratio.
//
//	dnslat -pid PID -name NAME [-n 100] [-hosts-name localhost]
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
)

func main() {
	pid := flag.Int("pid", 0, "a process in the asking container")
	name := flag.String("name", "", "the container name to look up")
	n := flag.Int("n", 100, "lookups")
	hostsName := flag.String("hosts-name", "localhost", "a name in the host's /etc/hosts")
	flag.Parse()
	if *pid == 0 || *name == "" {
		fmt.Fprintln(os.Stderr, "dnslat: -pid and -name are required")
		os.Exit(2)
	}
	// The /etc/hosts baseline first, in the host's namespace.
	r := net.DefaultResolver
	hosts := make([]time.Duration, *n)
	for i := range hosts {
		t0 := time.Now()
		if _, err := r.LookupHost(context.Background(), *hostsName); err != nil {
			fail("%s in /etc/hosts: %v", *hostsName, err)
		}
		hosts[i] = time.Since(t0)
	}

	runtime.LockOSThread()
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", *pid))
	if err != nil {
		fail("%v", err)
	}
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		fail("setns: %v", err)
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(*name + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, _ := b.Finish()
	dns := make([]time.Duration, *n)
	buf := make([]byte, 1500)
	for i := range dns {
		t0 := time.Now()
		c, err := net.Dial("udp", "127.0.0.11:53")
		if err != nil {
			fail("%v", err)
		}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Write(q)
		m, err := c.Read(buf)
		c.Close()
		if err != nil {
			fail("query %d: %v", i, err)
		}
		var p dnsmessage.Parser
		if _, err := p.Start(buf[:m]); err != nil {
			fail("answer %d: %v", i, err)
		}
		p.SkipAllQuestions()
		if _, err := p.AnswerHeader(); err != nil {
			fail("answer %d has no record for %s: %v", i, *name, err)
		}
		dns[i] = time.Since(t0)
	}
	md, mh := median(dns), median(hosts)
	fmt.Printf("  a container's name from another container (UDP to 127.0.0.11): median %7.1f µs, p90 %7.1f µs over %d\n", us(md), us(p90(dns)), *n)
	fmt.Printf("  a name in /etc/hosts (glibc getaddrinfo, host):               median %7.1f µs, p90 %7.1f µs over %d\n", us(mh), us(p90(hosts)), *n)
	fmt.Printf("  ratio name server / hosts file: %.1fx\n", float64(md)/float64(mh))
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func p90(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)*9/10]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

func fail(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "dnslat: "+f+"\n", a...)
	os.Exit(1)
}
