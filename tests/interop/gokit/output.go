// Package gokit is the scaffolding the Go test peers under tests/interop share
// (gopeer, goquic, gomasa, godht): their contract with the Python harness (one
// JSON line per result on stdout, logs on stderr, {"error"} and a non-zero exit
// on failure), flags, identity keys, the unlimited resource manager, listen
// addresses and the test protocols' stream handlers.
//
// Each peer is its own Go module (goquic needs a newer go-libp2p than the
// others) and uses this one through a replace directive; it compiles against
// whichever go-libp2p version the peer's module selects, so it keeps to API
// that v0.36.3 and v0.46.0 share. tests/interop/gopeer.py digests these sources
// into every peer's build cache key.
package gokit

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
)

// Log writes to stderr, so that stdout carries nothing but JSON results.
// Named sets its prefix to the program's name.
var Log = log.New(os.Stderr, "", log.Lmicroseconds)

// Named prefixes every log line with the program's name and returns Log.
func Named(program string) *log.Logger {
	Log.SetPrefix(program + ": ")
	return Log
}

var stdout sync.Mutex

// Emit prints v as one JSON line on stdout (an {"error"} line if v cannot be
// encoded). Safe for concurrent use: lines never interleave.
func Emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	stdout.Lock()
	defer stdout.Unlock()
	os.Stdout.Write(append(b, '\n'))
}

// UsageError marks a bad command line: Fail exits with status 2 instead of 1.
type UsageError struct{ Msg string }

func (e UsageError) Error() string { return e.Msg }

// Usagef is a UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return UsageError{fmt.Sprintf(format, args...)}
}

// Fail logs err, prints it as {"error": ...} and exits: status 2 for a
// UsageError, 1 otherwise.
func Fail(err error) {
	Log.Printf("error: %v", err)
	Emit(map[string]string{"error": err.Error()})
	var ue UsageError
	if errors.As(err, &ue) {
		os.Exit(2)
	}
	os.Exit(1)
}

// Main runs the subcommand named by os.Args[1] with the remaining arguments
// and Fails with its error; a missing subcommand is a UsageError saying usage,
// an unknown one a UsageError naming it.
func Main(usage string, commands map[string]func(args []string) error) {
	if len(os.Args) < 2 {
		Fail(UsageError{usage})
	}
	run, ok := commands[os.Args[1]]
	if !ok {
		Fail(Usagef("unknown command %q", os.Args[1]))
	}
	if err := run(os.Args[2:]); err != nil {
		Fail(err)
	}
}
