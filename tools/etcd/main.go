// etcd for the lab control plane. Debian's etcd-server is 3.4.23, too old for the apiserver's
// watch-progress requests, which client-go's streaming lists (tilt, kwok) need; without them every
// informer falls back after an error and a delay. This builds the etcd server from the module proxy.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
