// The pod sandbox's process: holds the pod's namespaces and does nothing else. Written here
// (a few lines) because the upstream pause image cannot be pulled on a registry-less machine.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// Reap orphaned children: the sandbox is PID 1 of the pod's PID namespace when shared.
	signal.Ignore(syscall.SIGCHLD)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
