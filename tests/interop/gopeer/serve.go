package main

import (
	"flag"

	"gokit"
)

func cmdServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var so stackOptions
	so.register(fs)
	var listen gokit.StringList
	fs.Var(&listen, "listen", "listen multiaddr (repeatable; default /ip4/127.0.0.1/tcp/0)")
	echo := fs.Bool("echo", false, "serve "+gokit.EchoProtocol)
	worker := fs.Bool("worker", false, "serve masa's worker protocol")
	version := fs.String("protocol-version", "v0.8.4", "masa protocol version")
	env := fs.String("env", "", "masa environment suffix")
	fs.BoolVar(&so.disablePing, "no-ping", false, "disable the ping service (as masa does)")
	if _, err := gokit.ParseArgs(fs, args); err != nil {
		return err
	}
	if len(listen) == 0 {
		listen = gokit.StringList{"/ip4/127.0.0.1/tcp/0"}
	}
	h, err := so.newHost(listen)
	if err != nil {
		return err
	}
	defer h.Close()

	gokit.ServeTestProtocols(h, *echo)
	if *worker {
		h.SetStreamHandler(workerProtocol(*version, *env), gokit.HandleTestWork)
	}
	gokit.LogConnections(h)
	return gokit.ServeUntilSignal(h)
}
