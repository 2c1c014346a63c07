//go:build linux

// Command clusterfwd carries the two kinds of traffic that cross between the host and the nodes of
// scripts/cluster-up, whose kubelets live in network namespaces of their own:
//
//   - node to API server: in each node's namespace it listens on the address of the cluster's
//     "kubernetes" Service (assigned to that namespace's loopback device) and forwards every
//     connection to the API server on the host's loopback;
//   - cluster DNS: in each node's namespace it answers on the cluster DNS address for
//     kubernetes.default.svc.<domain> (the "kubernetes" Service address) and refuses the rest,
//     which is all the agents' DNS probe and the controller ask of a cluster's resolver;
//   - API server to kubelet (logs, exec, port-forward): it serves HTTP CONNECT on a unix socket
//     that the API server's egress selector names, and dials the kubelet from the router
//     namespace, which reaches every node. Only the nodes' kubelet and node-exporter ports are allowed.
//
// It runs until SIGTERM. Nothing here leaves the machine: the host side is loopback, and the
// namespace side only reaches addresses cluster-up assigned inside its own namespaces.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/nodeping/nodeping/internal/netns"
)

type listenFlag []string

func (l *listenFlag) String() string     { return strings.Join(*l, ",") }
func (l *listenFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "clusterfwd:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("clusterfwd", flag.ContinueOnError)
	api := fs.String("api", "", "the API server's host address (loopback), host:port")
	var listens listenFlag
	fs.Var(&listens, "listen", "NETNS=ADDR: listen on ADDR inside network namespace NETNS and forward to -api (repeatable)")
	var dnsAddrs listenFlag
	fs.Var(&dnsAddrs, "dns", "NETNS=ADDR: serve cluster DNS (UDP and TCP) on ADDR inside NETNS (repeatable)")
	domain := fs.String("dns-domain", "cluster.local.", "the cluster's DNS domain")
	svcIP := fs.String("dns-kubernetes", "198.19.255.1", "the address of kubernetes.default.svc")
	uds := fs.String("connect-socket", "", "unix socket to serve HTTP CONNECT on, for the API server's egress to kubelets")
	router := fs.String("connect-netns", "", "network namespace to dial CONNECT targets from")
	prefix := fs.String("connect-allow", "198.18.0.0/15", "CONNECT targets must be in this prefix")
	ports := fs.String("connect-ports", "10250,9100", "the only ports CONNECT may reach (the kubelet's; node-exporter's for pod proxies), comma-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *api == "" || len(listens) == 0 {
		return errors.New("-api and at least one -listen are required")
	}
	allow, err := netip.ParsePrefix(*prefix)
	if err != nil {
		return fmt.Errorf("-connect-allow: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var wg sync.WaitGroup
	var closers []io.Closer
	for _, l := range listens {
		ns, addr, ok := strings.Cut(l, "=")
		if !ok {
			return fmt.Errorf("-listen %q: want NETNS=ADDR", l)
		}
		var ln net.Listener
		var lerr error
		if err := netns.Do(ns, func() { ln, lerr = net.Listen("tcp", addr) }); err != nil {
			return err
		}
		if lerr != nil {
			return fmt.Errorf("listen on %s in %s: %w", addr, ns, lerr)
		}
		closers = append(closers, ln)
		wg.Add(1)
		go func() {
			defer wg.Done()
			nlog := log.With("netns", ns)
			netns.Forward(ln, func() (net.Conn, error) { return net.DialTimeout("tcp", *api, 5*time.Second) },
				func(err error) { nlog.Warn("dial upstream", "err", err) })
		}()
	}
	kube, err := netip.ParseAddr(*svcIP)
	if err != nil || !kube.Is4() {
		return fmt.Errorf("-dns-kubernetes %q: want an IPv4 address", *svcIP)
	}
	handler := dnsHandler(dns.Fqdn("kubernetes.default.svc."+*domain), kube)
	for _, l := range dnsAddrs {
		ns, addr, ok := strings.Cut(l, "=")
		if !ok {
			return fmt.Errorf("-dns %q: want NETNS=ADDR", l)
		}
		var pc net.PacketConn
		var ln net.Listener
		var lerr error
		if err := netns.Do(ns, func() {
			if pc, lerr = net.ListenPacket("udp", addr); lerr == nil {
				ln, lerr = net.Listen("tcp", addr)
			}
		}); err != nil {
			return err
		}
		if lerr != nil {
			return fmt.Errorf("DNS on %s in %s: %w", addr, ns, lerr)
		}
		for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler,
			ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}} {
			closers = append(closers, closerFunc(srv.Shutdown))
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := srv.ActivateAndServe(); err != nil {
					log.Warn("DNS server", "netns", ns, "err", err)
				}
			}()
		}
	}
	if *uds != "" {
		if *router == "" {
			return errors.New("-connect-socket needs -connect-netns")
		}
		_ = os.Remove(*uds)
		ln, err := net.Listen("unix", *uds)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", *uds, err)
		}
		closers = append(closers, ln)
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveConnect(ln, *router, allow, strings.Split(*ports, ","), log)
		}()
	}
	log.Info("forwarding", "api", *api, "listeners", len(listens), "connect", *uds)
	<-ctx.Done()
	for _, c := range closers {
		c.Close()
	}
	wg.Wait()
	return nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// dnsHandler answers A queries for name with addr, AAAA for it with no data, and refuses every
// other name: there are no other Services to resolve.
func dnsHandler(name string, addr netip.Addr) dns.HandlerFunc {
	return func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		if len(req.Question) != 1 {
			m.Rcode = dns.RcodeFormatError
		} else if q := req.Question[0]; !strings.EqualFold(q.Name, name) {
			m.Rcode = dns.RcodeNameError
		} else if q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA,
				Class: dns.ClassINET, Ttl: 5}, A: addr.AsSlice()})
		}
		_ = w.WriteMsg(m)
	}
}

// serveConnect answers HTTP CONNECT requests, dialing allowed targets from inside netns ns.
func serveConnect(ln net.Listener, ns string, allow netip.Prefix, ports []string, log *slog.Logger) {
	netns.Serve(ln, func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		target, err := checkTarget(req, allow, ports)
		if err != nil {
			log.Warn("CONNECT refused", "target", req.Host, "err", err)
			fmt.Fprintf(c, "HTTP/1.1 403 Forbidden\r\n\r\n%s\n", err)
			return
		}
		up, derr := netns.Dial(ns, target, 5*time.Second)
		if derr != nil {
			fmt.Fprintf(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n%s\n", derr)
			return
		}
		defer up.Close()
		c.SetReadDeadline(time.Time{})
		if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
			return
		}
		if n := br.Buffered(); n > 0 {
			b, _ := br.Peek(n)
			if _, err := up.Write(b); err != nil {
				return
			}
		}
		netns.Splice(c, up)
	})
}

func checkTarget(req *http.Request, allow netip.Prefix, ports []string) (string, error) {
	if req.Method != http.MethodConnect {
		return "", fmt.Errorf("method %s, want CONNECT", req.Method)
	}
	host, p, err := net.SplitHostPort(req.Host)
	if err != nil {
		return "", err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !allow.Contains(ip) || !slices.Contains(ports, p) {
		return "", fmt.Errorf("%s is not a node's port (%s, ports %s)", req.Host, allow, strings.Join(ports, ","))
	}
	return req.Host, nil
}
