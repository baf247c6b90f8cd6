// Command etcd is the etcd server, exactly as the upstream binary: the
// upstream main package lives in the root module go.etcd.io/etcd/v3, which is
// not published for consumption, so this wrapper calls the same entry point.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
