// Package sockopt holds the socket options that the probes and the responders share.
package sockopt
