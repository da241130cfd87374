package vm

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/agent"
)

// VM templates (as Kata's "VM templating"): a guest booted once to its
// agent's hello and saved, whose clones start from it instead of booting.
// The template's RAM lives in a file (QEMU's memory-backend-file,
// share=on while it is made); its device state, a few dozen KiB, is
// QEMU's migration stream, saved with x-ignore-shared (the RAM stays in
// the file and out of the stream). A clone maps the same file privately
// (share=off: copy-on-write over the page cache, which all clones share)
// and loads the device state (-incoming); the host then resumes the agent
// with fresh entropy and the time (agent.TypeResume). See
// docs/architecture.md's VM driver section for what clones share.

// EnvTemplate set to "0" turns VM templates off: every VM boots.
const EnvTemplate = "BERTH_VM_TEMPLATE"

// templatesEnabled reports whether VMs may start from templates.
func templatesEnabled() bool { return os.Getenv(EnvTemplate) != "0" }

// templateFormat changes whenever what a template holds or how it is
// made changes: old ones are then never used.
const templateFormat = 1

// Files of a template's directory, <cache>/templates/<key>.
const (
	templateRAM   = "ram"
	templateState = "state"
	templateMeta  = "template.json"
	// templateKernel: the kernel's boot header alone (kernelStub), which
	// a clone's QEMU loads instead of the kernel.
	templateKernel = "kernel"
)

// templateRun is how a machine uses a template (nil: a cold boot).
type templateRun struct {
	// RAM is the template's memory file.
	RAM string `json:"ram"`
	// Make: the machine is the template being made (its RAM shared
	// with the file; no taps). Otherwise it is a clone, which loads the
	// template's device state from its fd StateFD.
	Make    bool `json:"make,omitempty"`
	StateFD int  `json:"stateFD"`
}

// templateQMP is the socket of QEMU's QMP monitor, in the VM's (or the
// template's) directory, for a machine made as or from a template.
const templateQMP = "qmp.sock"

// templateArgs are QEMU's arguments for a machine made as, or started
// from, a template: its memory in the template's file, and QMP, through
// which the shim saves the template or has the clone load its device
// state (the migration capability x-ignore-shared must be set on both
// sides, which QEMU 7.2 allows only through the monitor: the save leaves
// the shared RAM out of the stream, and the load expects none).
func (m *machine) templateArgs() []string {
	t := m.Template
	if t == nil {
		return nil
	}
	share := "off"
	if t.Make {
		share = "on"
	}
	a := []string{
		"-object", "memory-backend-file,id=mem,size=" + strconv.Itoa(m.MemoryMiB) + "M,mem-path=" + t.RAM + ",share=" + share,
		"-numa", "node,memdev=mem",
		"-qmp", "unix:" + templateQMP + ",server=on,wait=off",
	}
	if t.Make {
		return a
	}
	return append(a, "-incoming", "defer")
}

// templateFiles is how many files beyond the taps QEMU gets for m: a
// template being made has no taps, a clone has its state file.
func (m *machine) templateFiles() int {
	switch t := m.Template; {
	case t == nil:
		return 0
	case t.Make:
		return -len(m.NICs)
	}
	return 1
}

// templateMAC is the MAC of a template's NIC i. QEMU's migration state of
// a virtio-net device carries its MAC, so a clone's NIC i shows this one
// until the agent gives it the host's (agent.Interface.DeviceMAC).
func templateMAC(i int) string { return fmt.Sprintf("02:be:e7:00:00:%02x", i) }

// templateEligible says why m cannot start from a template ("" if it
// can).
func templateEligible(m *machine) string {
	switch {
	case m.Share:
		// vhost-user (virtiofsd) needs the guest's memory shared, a
		// clone's is private to it.
		return "volumes (virtio-fs needs shared guest memory)"
	case discardsRAM(m.args()):
		return "a device that discards guest memory (virtio-balloon, virtio-mem)"
	case m.Accel != AccelTCG:
		// Not measured on KVM here (this host's KVM cannot run a
		// stock guest): off until it is.
		return "not under " + m.Accel
	}
	return ""
}

// discardsRAM reports whether QEMU's arguments give the guest a device
// through which it hands memory back (virtio-balloon's inflation, free
// page reporting or hinting; virtio-mem). QEMU 7.2 discards such memory
// with fallocate(PUNCH_HOLE) on the backing file even when the mapping
// is private (ram_block_discard_range: need_fallocate = fd != -1; fixed
// in QEMU 8.1): a clone would zero pages of the template's file under
// every other clone. So such a machine never starts from a template.
func discardsRAM(args []string) bool {
	for _, a := range args {
		if strings.Contains(a, "virtio-balloon") || strings.Contains(a, "virtio-mem") {
			return true
		}
	}
	return false
}

// fileID identifies a file's content by its path, size, time and inode:
// a rebuilt QEMU, kernel or initramfs is another template's input.
func fileID(p string) (string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	ino := uint64(0)
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = s.Ino
	}
	return fmt.Sprintf("%s %d %d %d", p, st.Size(), st.ModTime().UnixNano(), ino), nil
}

// templateKey names the template m can start from: everything a clone
// must share with it. The device shape (memory, vCPUs, how many disks
// and NICs: each is a virtio-mmio transport whose state the template
// holds; the writable disk's too), the accelerator, and the identity of QEMU, the kernel and the
// initramfs (the agent). Not the disks' or NICs' backends: the guest
// probes those after the restore. Not the TSC frequency given to the
// kernel: the restored kernel calibrated long ago, on this host.
func templateKey(m *machine) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "format %d\naccel %s\nmemory %d\ncpus %d\ndisks %d\nupper %t\nnics %d\ncmdline %s\n",
		templateFormat, m.Accel, m.MemoryMiB, m.CPUs, len(m.Disks), m.Upper != "", len(m.NICs), kernelCmdline)
	for _, p := range []string{m.QEMU, m.Kernel, m.Initrd} {
		id, err := fileID(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\n", id)
	}
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

// templateMetaData is a template's template.json.
type templateMetaData struct {
	// Hello is the agent's hello, said to the host that made the
	// template: a clone's host answers it.
	Hello   agent.Hello `json:"hello"`
	Created time.Time   `json:"created"`
	// Inputs are the identities (fileID) of QEMU, the kernel and the
	// initramfs it was made from: when one no longer matches its file,
	// the template is stale and removed (pruneStaleTemplates).
	Inputs map[string]string `json:"inputs"`
	// Took is how long making the template took.
	Took time.Duration `json:"took"`
}

// templateFor returns the directory of the template for m, making it
// first (under a lock, so VMs of one shape starting at once make it
// once) when there is none.
func templateFor(cache string, m *machine, timeout time.Duration) (string, *templateMetaData, error) {
	key, err := templateKey(m)
	if err != nil {
		return "", nil, err
	}
	root := filepath.Join(cache, "templates")
	dir := filepath.Join(root, key)
	if meta, err := readTemplate(dir); err == nil {
		return dir, meta, nil
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", nil, err
	}
	unlock, err := lockFile(dir + ".lock")
	if err != nil {
		return "", nil, err
	}
	defer unlock()
	if meta, err := readTemplate(dir); err == nil {
		return dir, meta, nil
	}
	os.RemoveAll(dir) // a partial one (none is renamed in before it is whole)
	meta, err := makeTemplate(root, dir, m, timeout)
	if err != nil {
		return "", nil, err
	}
	return dir, meta, nil
}

func readTemplate(dir string) (*templateMetaData, error) {
	b, err := os.ReadFile(filepath.Join(dir, templateMeta))
	if err != nil {
		return nil, err
	}
	var meta templateMetaData
	if err := json.Unmarshal(b, &meta); err != nil {
		return nil, err
	}
	for _, f := range []string{templateRAM, templateState} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, err
		}
	}
	return &meta, nil
}

// makeTemplate boots m's shape with its memory in a file, waits for the
// agent's hello, pauses the guest and saves its device state, in a
// directory of its own renamed to dir once whole: the RAM file is never
// written again after that (clones map it).
func makeTemplate(root, dir string, m *machine, timeout time.Duration) (*templateMetaData, error) {
	t0 := time.Now()
	tmp, err := os.MkdirTemp(root, ".making-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	// Stand-ins for the disks: the guest does not look at them before
	// the agent is up (virtio_blk is loaded with the container).
	blank := filepath.Join(tmp, "blank.img")
	if err := os.WriteFile(blank, make([]byte, 4096), 0o600); err != nil {
		return nil, err
	}
	tm := *m
	tm.Disks = make([]string, len(m.Disks))
	for i := range tm.Disks {
		tm.Disks[i] = blank
	}
	if m.Upper != "" {
		// The writable disk's transport too, on a stand-in: the
		// container's own disk is never the template's.
		tm.Upper = filepath.Join(tmp, "upper-blank.img")
		if err := os.WriteFile(tm.Upper, make([]byte, 4096), 0o600); err != nil {
			return nil, err
		}
	}
	tm.NICs = make([]string, len(m.NICs))
	for i := range tm.NICs {
		tm.NICs[i] = templateMAC(i)
	}
	tm.Share = false
	// QEMU 7.2 migrates to a file only through exec: (a `cat`, which
	// the sandbox's spawn=deny forbids) or an fd passed over QMP
	// (getfd: an outgoing fd: is looked up by name only).
	state, err := os.OpenFile(filepath.Join(tmp, templateState), os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	defer state.Close()
	// Made here, root's alone (QEMU would make it world-readable): it
	// holds the guest's memory.
	ram, err := os.OpenFile(filepath.Join(tmp, templateRAM), os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	ram.Close()
	tm.Template = &templateRun{RAM: filepath.Join(tmp, templateRAM), Make: true}
	cmd, err := tm.start(tmp, nil)
	if err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	c, hello, err := dialAgent(tmp, t0.Add(timeout), exited)
	if err != nil {
		q, _ := os.ReadFile(filepath.Join(tmp, "qemu.log"))
		return nil, fmt.Errorf("boot the VM template: %w: %s", err, strings.TrimSpace(string(q)))
	}
	defer c.Close()
	booted := time.Since(t0)
	q, err := dialQMP(filepath.Join(tmp, templateQMP))
	if err != nil {
		return nil, fmt.Errorf("the VM template's QMP: %w", err)
	}
	defer q.close()
	if err := q.sendFD("getfd", map[string]any{"fdname": "state"}, state); err != nil {
		return nil, fmt.Errorf("save the VM template: getfd: %w", err)
	}
	state.Close()
	for _, step := range []struct {
		cmd  string
		args any
	}{
		{"stop", nil},
		{"migrate-set-capabilities", map[string]any{"capabilities": []map[string]any{{"capability": "x-ignore-shared", "state": true}}}},
		{"migrate", map[string]any{"uri": "fd:state"}},
	} {
		if _, err := q.call(step.cmd, step.args); err != nil {
			return nil, fmt.Errorf("save the VM template: %s: %w", step.cmd, err)
		}
	}
	if err := q.waitMigration("query-migrate", "completed", time.Now().Add(timeout)); err != nil {
		return nil, fmt.Errorf("save the VM template: %w", err)
	}
	q.call("quit", nil)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		return nil, errors.New("the VM template's QEMU did not quit")
	}
	meta := &templateMetaData{Hello: *hello, Created: time.Now(), Took: time.Since(t0), Inputs: map[string]string{}}
	for _, p := range []string{m.QEMU, m.Kernel, m.Initrd} {
		id, err := fileID(p)
		if err != nil {
			return nil, err
		}
		meta.Inputs[p] = id
	}
	if err := writeKernelStub(m.Kernel, filepath.Join(tmp, templateKernel)); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(meta)
	if err := os.WriteFile(filepath.Join(tmp, templateMeta), b, 0o600); err != nil {
		return nil, err
	}
	for _, f := range []string{"blank.img", agentSocket, templateQMP, "qemu.log", "console.log"} {
		os.Remove(filepath.Join(tmp, f))
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	log.Printf("VM template %s made in %v (booted in %v)", filepath.Base(dir), meta.Took.Round(time.Millisecond), booted.Round(time.Millisecond))
	pruneStaleTemplates(root)
	return meta, nil
}

// pruneStaleTemplates removes the templates made from a QEMU, kernel or
// initramfs that changed since (no VM can use them again), skipping any
// whose lock another process holds.
func pruneStaleTemplates(root string) {
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".making-") {
			// What a shim killed while making a template left.
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
				os.RemoveAll(filepath.Join(root, e.Name()))
			}
			continue
		}
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		meta, err := readTemplate(dir)
		if err != nil {
			continue
		}
		stale := false
		for p, in := range meta.Inputs {
			if id, err := fileID(p); err != nil || id != in {
				stale = true
			}
		}
		if !stale {
			continue
		}
		f, err := os.OpenFile(dir+".lock", os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.RemoveAll(dir)
			os.Remove(dir + ".lock")
			log.Printf("VM template %s removed: its QEMU, kernel or initramfs changed", e.Name())
		}
		f.Close()
	}
}

// loadTemplate has a clone's QEMU (started with -incoming defer) load
// the template's device state from its fd and run the guest on.
func loadTemplate(dir string, stateFD int, deadline time.Time) error {
	q, err := dialQMP(filepath.Join(dir, templateQMP))
	if err != nil {
		return fmt.Errorf("QMP: %w", err)
	}
	defer q.close()
	// Nothing else may reach this monitor: its name goes now (QEMU
	// keeps listening on a socket no one can connect to).
	os.Remove(filepath.Join(dir, templateQMP))
	if _, err := q.call("migrate-set-capabilities", map[string]any{"capabilities": []map[string]any{{"capability": "x-ignore-shared", "state": true}}}); err != nil {
		return err
	}
	if _, err := q.call("migrate-incoming", map[string]any{"uri": "fd:" + strconv.Itoa(stateFD)}); err != nil {
		return fmt.Errorf("migrate-incoming: %w", err)
	}
	if err := q.waitMigration("query-migrate", "completed", deadline); err != nil {
		return fmt.Errorf("load the device state: %w", err)
	}
	// The template was saved paused: its clones stay so until told.
	_, err = q.call("cont", nil)
	return err
}

// waitMigration polls query-migrate until its status is want, a failure
// or the deadline.
func (q *qmp) waitMigration(cmd, want string, deadline time.Time) error {
	for {
		r, err := q.call(cmd, nil)
		if err != nil {
			return err
		}
		var st struct {
			Status    string `json:"status"`
			ErrorDesc string `json:"error-desc"`
		}
		json.Unmarshal(r, &st)
		switch st.Status {
		case want:
			return nil
		case "failed", "cancelled":
			return fmt.Errorf("migration %s: %s", st.Status, st.ErrorDesc)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("migration %q after the deadline", st.Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// PruneTemplates removes the VM templates (their memory files are the
// bulk: what the template guest touched, up to its memory size). A VM
// started from one keeps its mapping of the removed file; the next VM of
// its shape makes a new template. It returns how many it removed.
func (d *Driver) PruneTemplates() (int, error) {
	root := filepath.Join(d.Cache, "templates")
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		p := filepath.Join(root, e.Name())
		if strings.HasPrefix(e.Name(), ".making-") {
			// What a shim killed while making a template left.
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
				os.RemoveAll(p)
			}
			continue
		}
		if !e.IsDir() {
			continue
		}
		// Under its lock: never while a VM makes it.
		unlock, err := lockFile(p + ".lock")
		if err != nil {
			return n, err
		}
		err = os.RemoveAll(p)
		os.Remove(p + ".lock")
		unlock()
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// qmp is a minimal client of QEMU's QMP monitor.
type qmp struct {
	c  net.Conn
	rd *bufio.Reader
}

func dialQMP(sock string) (*qmp, error) {
	var c net.Conn
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err = net.Dial("unix", relOrAbs(sock)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(10 * time.Millisecond)
	}
	q := &qmp{c: c, rd: bufio.NewReader(c)}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := q.rd.ReadBytes('\n'); err != nil { // the greeting
		c.Close()
		return nil, err
	}
	if _, err := q.call("qmp_capabilities", nil); err != nil {
		c.Close()
		return nil, err
	}
	return q, nil
}

// sendFD runs a command with f passed along (SCM_RIGHTS).
func (q *qmp) sendFD(cmd string, args any, f *os.File) error {
	b, _ := json.Marshal(map[string]any{"execute": cmd, "arguments": args})
	q.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, _, err := q.c.(*net.UnixConn).WriteMsgUnix(append(b, '\n'), unix.UnixRights(int(f.Fd())), nil); err != nil {
		return err
	}
	_, err := q.reply()
	return err
}

// call runs one command and returns its "return" value, skipping events.
func (q *qmp) call(cmd string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	q.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := q.c.Write(append(b, '\n')); err != nil {
		return nil, err
	}
	return q.reply()
}

// reply reads a command's answer, skipping events.
func (q *qmp) reply() (json.RawMessage, error) {
	for {
		line, err := q.rd.ReadBytes('\n')
		if err != nil {
			return nil, err
		}
		var r struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Desc string `json:"desc"`
			} `json:"error"`
			Event string `json:"event"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, err
		}
		if r.Event != "" {
			continue
		}
		if r.Error != nil {
			return nil, errors.New(r.Error.Desc)
		}
		return r.Return, nil
	}
}

func (q *qmp) close() { q.c.Close() }

// resumeRequest is what a clone's agent gets first: fresh entropy from
// the host's generator and the host's clock.
func resumeRequest() (*agent.Resume, error) {
	r := &agent.Resume{Entropy: make([]byte, 64)}
	if _, err := rand.Read(r.Entropy); err != nil {
		return nil, err
	}
	r.UnixNano = time.Now().UnixNano()
	return r, nil
}

// writeKernelStub writes, for a bzImage kernel, its real-mode setup and a
// page of zeros to dst: what a clone's QEMU needs to lay out the machine
// as the template's was, without the kernel itself, which QEMU otherwise
// keeps in its memory for the whole run (a copy for the firmware's
// loader: 13.5 MiB of every clone's memory for Debian's cloud kernel).
// A clone never boots it: its memory is the template's booted guest, and
// a reset ends the VM (-no-reboot). Another kind of kernel (an ELF
// vmlinux) gets no stub: its clones load it whole.
func writeKernelStub(kernel, dst string) error {
	f, err := os.Open(kernel)
	if err != nil {
		return err
	}
	defer f.Close()
	hdr := make([]byte, (255+1)*512) // the most setup_sects allows
	n, err := io.ReadFull(f, hdr)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the kernel %s: %w", kernel, err)
	}
	hdr = hdr[:n]
	// The x86 boot protocol: "HdrS" at 0x202, setup_sects at 0x1f1 (0
	// means 4), the setup that many 512-byte sectors after the boot
	// sector.
	if len(hdr) < 0x206 || string(hdr[0x202:0x206]) != "HdrS" {
		return nil
	}
	sects := int(hdr[0x1f1])
	if sects == 0 {
		sects = 4
	}
	setup := (sects + 1) * 512
	if setup > len(hdr) {
		return nil
	}
	return os.WriteFile(dst, append(hdr[:setup:setup], make([]byte, 4096)...), 0o600)
}

// cloneKernel is the kernel a clone of the template in dir loads: its
// stub, or the kernel itself where it has none.
func cloneKernel(dir, kernel string) string {
	stub := filepath.Join(dir, templateKernel)
	if _, err := os.Stat(stub); err == nil {
		return stub
	}
	return kernel
}
