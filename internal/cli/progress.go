package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/image"
	"golang.org/x/term"
)

// progressPrinter shows an image.Progress stream: on a terminal, one bar
// per layer redrawn in place (bytes, speed, ETA, phase); in a pipe, one line
// each time a layer changes phase; nothing when quiet.
type progressPrinter struct {
	w     io.Writer
	tty   bool
	width int
	verb  string // "Downloading" or "Pushing"

	mu     sync.Mutex
	order  []string
	layers map[string]*layerState
	drawn  int // lines drawn last time (tty)
	stop   chan struct{}
	done   chan struct{}
}

type layerState struct {
	ev      image.Event
	started time.Time
	ended   time.Time
}

func newProgressPrinter(w *os.File, quiet bool, verb string) *progressPrinter {
	if quiet {
		return nil
	}
	p := &progressPrinter{w: w, verb: verb, layers: map[string]*layerState{}}
	if term.IsTerminal(int(w.Fd())) {
		p.tty = true
		p.width, _, _ = term.GetSize(int(w.Fd()))
		if p.width <= 0 {
			p.width = 80
		}
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go p.loop()
	}
	return p
}

// Progress is the callback to hand to the service (nil when quiet).
func (p *progressPrinter) Progress() image.Progress {
	if p == nil {
		return nil
	}
	return p.update
}

func (p *progressPrinter) update(e image.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st, ok := p.layers[e.ID]
	if !ok {
		st = &layerState{}
		p.layers[e.ID] = st
		p.order = append(p.order, e.ID)
	}
	prev := st.ev.Phase
	if e.Phase == image.PhaseDownloading && st.started.IsZero() {
		st.started = time.Now()
	}
	if (e.Phase == image.PhaseDone || e.Phase == image.PhaseExists || e.Phase == image.PhaseFailed) && st.ended.IsZero() {
		st.ended = time.Now()
	}
	st.ev = e
	if !p.tty && e.Phase != prev && e.Phase != image.PhaseWaiting {
		fmt.Fprintln(p.w, p.line(e.ID, st))
	}
}

func (p *progressPrinter) loop() {
	defer close(p.done)
	t := time.NewTicker(150 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			p.redraw()
			return
		case <-t.C:
			p.redraw()
		}
	}
}

func (p *progressPrinter) redraw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	for _, id := range p.order {
		line := p.line(id, p.layers[id])
		if len(line) > p.width-1 {
			line = line[:p.width-1]
		}
		b.WriteString("\r\x1b[2K" + line + "\n")
	}
	p.drawn = len(p.order)
	io.WriteString(p.w, b.String())
}

// Close draws the final state.
func (p *progressPrinter) Close() {
	if p == nil || !p.tty {
		return
	}
	close(p.stop)
	<-p.done
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) >= i+13 {
		return d[i+1 : i+13]
	}
	return d
}

func (p *progressPrinter) line(id string, st *layerState) string {
	e := st.ev
	name := shortDigest(id)
	switch e.Phase {
	case image.PhaseWaiting:
		return name + ": Waiting"
	case image.PhaseExists:
		return name + ": Already exists"
	case image.PhaseFailed:
		return name + ": Failed: " + fmt.Sprint(e.Err)
	case image.PhaseDone:
		d := st.ended.Sub(st.started)
		if st.started.IsZero() {
			return fmt.Sprintf("%s: Done (%s)", name, humanBytes(e.Total))
		}
		return fmt.Sprintf("%s: Done (%s in %.1fs)", name, humanBytes(e.Total), d.Seconds())
	case image.PhaseExtracting:
		return name + ": Extracting"
	}
	// Downloading (or pushing).
	if !p.tty {
		if e.Resumed > 0 {
			return fmt.Sprintf("%s: %s (resuming at %s of %s)", name, p.verb, humanBytes(e.Resumed), humanBytes(e.Total))
		}
		return fmt.Sprintf("%s: %s (%s)", name, p.verb, humanBytes(e.Total))
	}
	elapsed := time.Since(st.started).Seconds()
	speed := 0.0
	if elapsed > 0 {
		speed = float64(e.Current-e.Resumed) / elapsed
	}
	bar := ""
	if e.Total > 0 {
		const width = 30
		n := int(width * e.Current / max(e.Total, 1))
		n = min(max(n, 0), width)
		bar = "[" + strings.Repeat("=", n) + strings.Repeat(" ", width-n) + "] "
	}
	eta := ""
	if speed > 0 && e.Total > e.Current {
		eta = fmt.Sprintf(" ETA %ds", int(float64(e.Total-e.Current)/speed+0.5))
	}
	return fmt.Sprintf("%s: %s %s%s/%s %s/s%s", name, p.verb, bar, humanBytes(e.Current), humanBytes(e.Total), humanBytes(int64(speed)), eta)
}

// humanBytes prints a size in docker's decimal units.
func humanBytes(n int64) string {
	f := float64(n)
	for _, u := range []string{"B", "kB", "MB", "GB", "TB"} {
		if f < 1000 || u == "TB" {
			if u == "B" {
				return fmt.Sprintf("%dB", n)
			}
			return fmt.Sprintf("%.3g%s", f, u)
		}
		f /= 1000
	}
	return ""
}
