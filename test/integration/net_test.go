package integration

import (
	"crypto/rand"
	"io"
	"net"
)

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func randReader() io.Reader { return rand.Reader }
