//go:build linux

package dockerapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/events"
)

// systemEvents is GET /events: the root's journal (every berth process
// writes it), docker's messages one JSON object a line, streaming from the
// first byte (the headers go at once) until the client goes or until
// passes. Without since, only events from now on, as dockerd.
func (s *Server) systemEvents(w http.ResponseWriter, r *http.Request) error {
	f, err := filters(r)
	if err != nil {
		return err
	}
	filter := events.Filter{}
	for k, vals := range f {
		filter[strings.ToLower(k)] = vals
	}
	var o events.ReadOptions
	for k, dst := range map[string]*time.Time{"since": &o.Since, "until": &o.Until} {
		if v := r.URL.Query().Get(k); v != "" {
			t, err := parseUnixTime(v)
			if err != nil {
				return httpError{http.StatusBadRequest, k + ": " + err.Error()}
			}
			*dst = t
		}
	}
	if !o.Until.IsZero() && o.Until.Before(o.Since) {
		return httpError{http.StatusBadRequest, "until is before since"}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush()
	}
	ctx := r.Context()
	if !o.Until.IsZero() && o.Until.Before(time.Now()) {
		o.Follow = false
	} else {
		o.Follow = true
		if !o.Until.IsZero() {
			var cancel func()
			ctx, cancel = contextUntil(ctx, o.Until)
			defer cancel()
		}
	}
	enc := json.NewEncoder(w)
	emit := func(m events.Message) error {
		if !filter.Match(m) || !events.InNamespace(m, s.e.Namespace()) {
			return nil
		}
		if err := enc.Encode(m); err != nil {
			return err
		}
		if fl != nil {
			fl.Flush()
		}
		return nil
	}
	if o.Follow {
		err = s.e.Events().Follow(ctx, o, emit)
	} else {
		err = s.e.Events().Read(ctx, o, emit)
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, ctx.Err()) {
		s.log.Warn("events", "err", err)
	}
	return nil
}
