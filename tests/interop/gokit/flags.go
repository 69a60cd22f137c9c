package gokit

import (
	"flag"
	"fmt"
	"os"
)

// StringList is a repeatable string flag.
type StringList []string

func (l *StringList) String() string     { return fmt.Sprint(*l) }
func (l *StringList) Set(v string) error { *l = append(*l, v); return nil }

// ParseArgs parses flags that may appear before or after positional
// arguments (Go's flag package stops at the first positional one) and
// returns the positional ones; a bad flag is a UsageError.
func ParseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(os.Stderr)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, UsageError{err.Error()}
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
