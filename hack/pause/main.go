// Command pause is the sandbox ("infra") container of every pod on the local
// cluster (hack/cluster.py): it holds the pod's namespaces open, reaps zombie
// children when it is PID 1 of a shared PID namespace, and exits on SIGINT or
// SIGTERM. Built static (CGO_ENABLED=0) into a FROM-scratch image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
