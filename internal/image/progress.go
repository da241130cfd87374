package image

// Phase is where one layer (or the manifest) of a pull stands.
type Phase string

const (
	PhaseWaiting     Phase = "waiting"        // queued behind the concurrency bound
	PhaseDownloading Phase = "downloading"    // bytes arriving, extracted as they come
	PhaseExtracting  Phase = "extracting"     // all bytes here, the unpack finishing
	PhaseExists      Phase = "already exists" // nothing to do
	PhaseDone        Phase = "done"           // verified and committed
	PhaseFailed      Phase = "failed"
)

// Event is one progress report of a pull or push. Reports of one layer come
// in order; reports of different layers interleave and may come from
// several goroutines at once.
type Event struct {
	// ID is the layer's (or blob's) digest.
	ID    string
	Phase Phase
	// Current and Total are bytes of the compressed blob (Total 0 if
	// unknown).
	Current, Total int64
	// Resumed is the number of bytes an earlier, interrupted pull had
	// already received.
	Resumed int64
	Err     error
}

// Progress receives Events. It must be safe for concurrent calls and quick:
// it is called for every read from the network.
type Progress func(Event)

func (p Progress) send(e Event) {
	if p != nil {
		p(e)
	}
}
