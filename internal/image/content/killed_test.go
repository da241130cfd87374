package content

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	helperEnv   = "BERTH_CONTENT_KILLED_WRITER"
	killedBytes = 1<<20 + 12345
)

// TestHelperKilledWriter is the child process of TestKilledWriterResumes:
// it writes part of a blob, says so, and waits to be killed.
func TestHelperKilledWriter(t *testing.T) {
	root := os.Getenv(helperEnv)
	if root == "" {
		t.Skip("helper process for TestKilledWriterResumes")
	}
	s, err := Open(root)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	data := randBytes(4<<20, 99)
	w, err := s.Writer(context.Background(), "killed", sha256Of(data), int64(len(data)))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if _, err := w.Write(data[:killedBytes]); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready", w.Offset())
	time.Sleep(time.Minute)
	os.Exit(2) // never reached: the parent kills us
}

func TestKilledWriterResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	root := t.TempDir()
	data := randBytes(4<<20, 99)
	d := sha256Of(data)

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperKilledWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+root)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		t.Fatalf("child said %q, %v", line, err)
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "ready "))); n != killedBytes {
		t.Fatalf("child wrote %d bytes, want %d", n, killedBytes)
	}

	// While the child lives, its lock holds across processes.
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Writer(context.Background(), "killed", d, int64(len(data))); !errors.Is(err, ErrLocked) {
		t.Fatalf("Writer while the child holds the ingest: %v, want ErrLocked", err)
	}
	if err := s.CleanIngests(0); err != nil {
		t.Fatal(err)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	// A fresh Store, as the next berth command would open it.
	s, err = Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Info(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("partial blob visible: %v", err)
	}
	ing, err := s.Ingests()
	if err != nil || len(ing) != 1 || ing[0].Ref != "killed" || ing[0].Offset != killedBytes {
		t.Fatalf("Ingests = %+v, %v", ing, err)
	}
	w, err := s.Writer(context.Background(), "killed", d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != killedBytes {
		t.Fatalf("resumed at %d, want %d", w.Offset(), killedBytes)
	}
	if _, err := w.Write(data[w.Offset():]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := readBlob(t, s, d); string(got) != string(data) {
		t.Fatal("content differs")
	}
	assertNoIngests(t, s)
}

func assertNoIngests(t *testing.T, s *Store) {
	t.Helper()
	if names := ingestEntries(t, s); len(names) != 0 {
		t.Errorf("ingests left: %v", names)
	}
}
