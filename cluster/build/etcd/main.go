// etcd's own entry point (go.etcd.io/etcd/server/v3/etcdmain), built as a binary here because
// the etcd main module is not a library one can `go install` with its replaces honoured.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
