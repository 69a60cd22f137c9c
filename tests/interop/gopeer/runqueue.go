package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// runQueue reads how long threads have spent runnable but off the CPU,
// waiting for the OS to run them (Linux /proc/<pid>/task/<tid>/schedstat,
// 2nd field, in ns): those of this process (reported as "go") and of pids.
// A dialer reads it around its connect and ping, so a harness can tell what
// a loaded machine added to that window from what the peers themselves took
// (it cannot read this process's threads once it has exited).
type runQueue struct {
	pids   []int
	before map[int]map[string]int64 // pid (0: this process) -> thread -> ns
}

func newRunQueue(pids []int) (*runQueue, error) {
	rq := &runQueue{pids: pids, before: map[int]map[string]int64{}}
	for _, pid := range append([]int{0}, pids...) {
		waits, err := threadWaits(pid)
		if err != nil {
			return nil, err
		}
		rq.before[pid] = waits
	}
	return rq, nil
}

// waitedMs gives, per process ("go" or its pid), the milliseconds its
// threads waited since newRunQueue, summed (a thread started meanwhile
// counts from zero, one that ended is left out).
func (rq *runQueue) waitedMs() (map[string]float64, error) {
	out := map[string]float64{}
	for pid, before := range rq.before {
		after, err := threadWaits(pid)
		if err != nil {
			return nil, err
		}
		var ns int64
		for tid, now := range after {
			ns += now - before[tid]
		}
		key := strconv.Itoa(pid)
		if pid == 0 {
			key = "go"
		}
		out[key] = float64(ns) / 1e6
	}
	return out, nil
}

// threadWaits reads each thread's run-queue wait of process pid (0: this one).
func threadWaits(pid int) (map[string]int64, error) {
	if pid == 0 {
		pid = os.Getpid()
	}
	paths, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no /proc/%d/task/*/schedstat", pid)
	}
	waits := map[string]int64{}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			continue // the thread ended meanwhile
		}
		fields := strings.Fields(string(data))
		if len(fields) < 2 {
			return nil, fmt.Errorf("%s: %q", path, data)
		}
		ns, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		waits[filepath.Base(filepath.Dir(path))] = ns
	}
	return waits, nil
}

// parsePids reads a comma-separated list of process IDs ("" for none).
func parsePids(s string) ([]int, error) {
	var pids []int
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		pid, err := strconv.Atoi(part)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("bad pid %q", part)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}
