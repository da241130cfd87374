package cli

import (
	"io"
	"strings"
	"testing"
)

// A command group given a command it does not have is an error, not its
// help with exit 0; the group alone still shows its help.
func TestUnknownSubcommand(t *testing.T) {
	for _, args := range [][]string{{"system", "bogus"}, {"volume", "bogus"}, {"image", "bogus"}} {
		root := NewRootCommand()
		root.SetArgs(args)
		root.SetOut(io.Discard)
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), `unknown command "bogus"`) {
			t.Errorf("berth %s: %v, want an unknown command error", strings.Join(args, " "), err)
		}
	}
	root := NewRootCommand()
	root.SetArgs([]string{"system"})
	root.SetOut(io.Discard)
	if err := root.Execute(); err != nil {
		t.Errorf("berth system: %v, want its help", err)
	}
}

// docker's exit statuses for errors found before any work: 125 for a
// flag, 1 for the arguments or an unknown command.
func TestExitStatuses(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"images", "--bogus-flag"}, 125},
		{[]string{"--bogus-flag", "images"}, 125},
		{[]string{"bogus-command"}, 1},
		{[]string{"image", "bogus-command"}, 1},
		{[]string{"tag", "only-one"}, 1},
		{[]string{"images", "a", "b"}, 1},
	} {
		if got := Main(tt.args); got != tt.code {
			t.Errorf("berth %s: exit %d, want %d", strings.Join(tt.args, " "), got, tt.code)
		}
	}
}
