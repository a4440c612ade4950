// SPDX-License-Identifier: MIT

// peer.go - a Go client and server for the torture runner (standard
// library only). Go issues its system calls itself, so the shim never
// sees them; the raw socket option goes through a Control function.
//
//	torture-go server|client bigwrite|echo [--optin] [--port P]
//
// bigwrite: the server sends 32 MiB of little-endian uint64 counters in
// one conn.Write and closes; the client reads them with io.ReadFull,
// checks each, and expects EOF after them.
// echo: the server echoes with io.Copy(conn, conn), which splices socket
// to socket, then half-closes; the client writes 8 MiB of counters,
// half-closes, and reads everything back.
//
// Outcomes go to stdout in the runner's line protocol (see torture.h).
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
)

const (
	solLoopfast   = 0x4c46
	optFastPath   = 1
	optState      = 2
	bigwriteBytes = 32 << 20
	echoBytes     = 8 << 20
)

var optin bool

func control(network, address string, c syscall.RawConn) error {
	if !optin {
		return nil
	}
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), solLoopfast, optFastPath, 1)
	})
	if err != nil {
		return err
	}
	if serr != nil {
		fmt.Printf("i optin_errno %d\n", serr.(syscall.Errno))
	}
	return nil
}

func state(c *net.TCPConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1
	}
	v := -1
	rc.Control(func(fd uintptr) {
		if s, err := syscall.GetsockoptInt(int(fd), solLoopfast, optState); err == nil {
			v = s
		}
	})
	return v
}

func counters(n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], uint64(i/8))
	}
	return b
}

// First offset whose counter is wrong, or -1.
func check(b []byte) int {
	for i := 0; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:]) != uint64(i/8) {
			for j := i; j < i+8; j++ {
				if b[j] != byte(uint64(i/8)>>(8*(j-i))) {
					return j
				}
			}
		}
	}
	return -1
}

func errName(err error) string {
	if err == nil {
		return "0"
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return strconv.Itoa(int(en))
	}
	return "error"
}

func report(what string, got []byte, want int, eof bool, err error) {
	fmt.Printf("k %s.bytes %d\n", what, len(got))
	fmt.Printf("i %s.want %d\n", what, want)
	fmt.Printf("k %s.bad %d\n", what, check(got))
	e := 0
	if eof {
		e = 1
	}
	fmt.Printf("k %s.eof %d\n", what, e)
	fmt.Printf("k %s.err %s\n", what, errName(err))
	if err != nil {
		fmt.Printf("x %s: %v\n", what, err)
	}
}

func bigwriteServer(c *net.TCPConn) {
	buf := counters(bigwriteBytes)
	n, err := c.Write(buf)
	fmt.Printf("i state.0 %d\n", state(c))
	fmt.Printf("k tx.bytes %d\n", n)
	fmt.Printf("i tx.want %d\n", bigwriteBytes)
	fmt.Printf("k tx.err %s\n", errName(err))
	c.Close()
}

func bigwriteClient(c *net.TCPConn) {
	buf := make([]byte, bigwriteBytes)
	n, err := io.ReadFull(c, buf)
	eof := false
	if err == nil {
		var one [1]byte
		m, e := c.Read(one[:])
		eof = m == 0 && e == io.EOF
		if m > 0 {
			fmt.Printf("x bytes after the stream's end\n")
		}
	}
	fmt.Printf("i state.0 %d\n", state(c))
	report("rx", buf[:n], bigwriteBytes, eof, err)
	c.Close()
}

func echoServer(c *net.TCPConn) {
	n, err := io.Copy(c, c)
	fmt.Printf("i state.0 %d\n", state(c))
	fmt.Printf("k echo.bytes %d\n", n)
	fmt.Printf("i echo.want %d\n", echoBytes)
	fmt.Printf("k echo.err %s\n", errName(err))
	c.CloseWrite()
	var one [1]byte
	c.Read(one[:])
	c.Close()
}

func echoClient(c *net.TCPConn) {
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(counters(echoBytes))
		c.CloseWrite()
		done <- err
	}()
	got, err := io.ReadAll(c)
	werr := <-done
	fmt.Printf("i state.0 %d\n", state(c))
	fmt.Printf("k tx.err %s\n", errName(werr))
	report("rx", got, echoBytes, err == nil, err)
	c.Close()
}

func server(test string) error {
	lc := net.ListenConfig{Control: control}
	l, err := lc.Listen(nil, "tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Printf("port %d\n", l.Addr().(*net.TCPAddr).Port)
	c, err := l.Accept()
	if err != nil {
		return err
	}
	if test == "echo" {
		echoServer(c.(*net.TCPConn))
	} else {
		bigwriteServer(c.(*net.TCPConn))
	}
	return nil
}

func client(test string, port int) error {
	d := net.Dialer{Control: control}
	c, err := d.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	fmt.Printf("conn 0\n")
	if test == "echo" {
		echoClient(c.(*net.TCPConn))
	} else {
		bigwriteClient(c.(*net.TCPConn))
	}
	return nil
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: torture-go server|client bigwrite|echo [--optin] [--port P]")
		os.Exit(2)
	}
	port := 0
	for i := 3; i < len(os.Args); i++ {
		switch os.Args[i] {
		case "--optin":
			optin = true
		case "--port":
			i++
			if i < len(os.Args) {
				port, _ = strconv.Atoi(os.Args[i])
			}
		}
	}
	var err error
	if os.Args[1] == "server" {
		err = server(os.Args[2])
	} else {
		err = client(os.Args[2], port)
	}
	if err != nil {
		fmt.Printf("x %s: %v\n", os.Args[1], err)
		fmt.Println("end")
		os.Exit(1)
	}
	fmt.Println("end")
}
