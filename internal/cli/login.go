package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/berth-dev/berth/internal/image/credentials"
	"github.com/berth-dev/berth/internal/image/reference"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// loginRegistry turns the optional SERVER argument into a registry key:
// none is Docker Hub; URLs lose their scheme and path.
func loginRegistry(args []string) (string, error) {
	if len(args) == 0 || args[0] == "" {
		return "docker.io", nil
	}
	key := credentials.NormalizeRegistry(args[0])
	if _, err := reference.ParseRegistry(key); err != nil {
		return "", err
	}
	return key, nil
}

func newLoginCommand(g *globalOptions) *cobra.Command {
	var user, password string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Log in to a registry (credentials checked, then stored in berth's auth file)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			registry, err := loginRegistry(args)
			if err != nil {
				return err
			}
			if passwordStdin {
				if password != "" {
					return errors.New("--password and --password-stdin are mutually exclusive")
				}
				b, err := io.ReadAll(os.Stdin)
				if err != nil {
					return err
				}
				password = strings.TrimRight(string(b), "\r\n")
			}
			in := bufio.NewReader(os.Stdin)
			if user == "" {
				if !term.IsTerminal(int(os.Stdin.Fd())) || passwordStdin {
					return errors.New("login: give --username (stdin is not a terminal to ask on)")
				}
				fmt.Fprint(os.Stderr, "Username: ")
				line, err := in.ReadString('\n')
				if err != nil {
					return err
				}
				user = strings.TrimSpace(line)
			}
			if password == "" {
				if !term.IsTerminal(int(os.Stdin.Fd())) {
					return errors.New("login: give --password-stdin or --password (stdin is not a terminal to ask on)")
				}
				fmt.Fprint(os.Stderr, "Password: ")
				b, err := term.ReadPassword(int(os.Stdin.Fd()))
				fmt.Fprintln(os.Stderr)
				if err != nil {
					return err
				}
				password = string(b)
			} else if !passwordStdin {
				fmt.Fprintln(os.Stderr, "WARNING! Using --password on the command line is insecure; use --password-stdin.")
			}
			reg, err := g.registryClient()
			if err != nil {
				return err
			}
			ctx := context.Background()
			if err := reg.CheckLogin(ctx, registry, user, password); err != nil {
				return fmt.Errorf("login %s: %w", registry, err)
			}
			k := g.keychain()
			if err := k.Store(ctx, registry, credentials.Credential{Username: user, Password: password}); err != nil {
				return err
			}
			file, _ := k.AuthFile()
			fmt.Printf("Login Succeeded (credentials for %s stored in %s)\n", registry, file)
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "user name")
	cmd.Flags().StringVarP(&password, "password", "p", "", "password (prefer --password-stdin)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	return cmd
}

func newLogoutCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Remove the stored credentials of a registry",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			registry, err := loginRegistry(args)
			if err != nil {
				return err
			}
			if err := g.keychain().Erase(context.Background(), registry); err != nil {
				return err
			}
			fmt.Printf("Removing login credentials for %s\n", registry)
			return nil
		},
	}
}
