package dns

// The C constructor in closefds_linux.c runs in every process of the
// binary and acts only in the server's (ServerEnv).

import "C"
