// Package store keeps the engine's container records in an embedded SQLite
// database (<root>/engine/berth.db), shared by every berth process.
//
// Why SQLite: every berth command is its own process (no daemon), so the
// records need a store that several processes open at once. SQLite in WAL
// mode gives concurrent readers, one writer at a time with a busy wait
// instead of an error, atomic multi-row transactions and a crash-safe
// journal. bbolt holds an exclusive flock for as long as it is open, which
// would serialise every ps behind every run.
//
// Invariants: a record is written only inside a transaction begun with
// BEGIN IMMEDIATE (so read-modify-write cannot lose an update); names are
// unique (a UNIQUE index, so two concurrent creates of one name cannot both
// succeed); a record's JSON is the whole truth of the container besides the
// runtime's own state and the monitor's exit file.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/internal/lockfile"
	_ "github.com/mattn/go-sqlite3"
)

// Error categories; errors wrap one of them.
var (
	ErrNotFound  = errors.New("not found")
	ErrAmbiguous = errors.New("ambiguous container ID prefix")
	ErrNameInUse = errors.New("container name is already in use")
)

// Row is what the store knows of a record beyond its JSON: the columns it
// indexes.
type Row struct {
	ID      string
	Name    string
	ImageID string
	Data    []byte
	// Namespace is the store namespace the record lives in ("" is the
	// CLI's and the Docker API's; the CRI's is its own).
	Namespace string
}

// DB is an open store. Safe for concurrent use. Names and ID prefixes
// resolve, and lists list, within the DB's namespace (InNamespace); a
// full ID reaches any record (the engine's own bookkeeping, the monitors'
// children); names are unique across namespaces.
type DB struct {
	db   *sql.DB
	path string
	ns   string
	// kind is the table of records the row methods work on: containers
	// (the zero value) or pods.
	kind kind
}

// kind is a table of records with the same columns: id, a name unique
// in the table, image_id, the JSON and the namespace.
type kind struct{ table, noun string }

func (k kind) tbl() string {
	if k.table == "" {
		return "containers"
	}
	return k.table
}

func (k kind) what() string {
	if k.noun == "" {
		return "container"
	}
	return k.noun
}

// Pods is d, its row methods (Insert, Get, Resolve, List, Update,
// Delete) working on the pods table instead of the containers one.
func (d *DB) Pods() *DB {
	c := *d
	c.kind = kind{"pods", "pod"}
	return &c
}

// InNamespace is d, resolving and listing in namespace ns.
func (d *DB) InNamespace(ns string) *DB {
	c := *d
	c.ns = ns
	return &c
}

// Namespace is the namespace d resolves and lists in.
func (d *DB) Namespace() string { return d.ns }

const schema = `
CREATE TABLE IF NOT EXISTS containers (
	id        TEXT PRIMARY KEY,
	name      TEXT NOT NULL UNIQUE,
	image_id  TEXT NOT NULL,
	data      TEXT NOT NULL,
	namespace TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS containers_image ON containers(image_id);
CREATE TABLE IF NOT EXISTS volumes (
	name TEXT PRIMARY KEY,
	data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idranges (
	container_id TEXT NOT NULL,
	kind         TEXT NOT NULL,
	start        INTEGER NOT NULL,
	size         INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idranges_container ON idranges(container_id);
CREATE TABLE IF NOT EXISTS pods (
	id        TEXT PRIMARY KEY,
	name      TEXT NOT NULL UNIQUE,
	image_id  TEXT NOT NULL DEFAULT '',
	data      TEXT NOT NULL,
	namespace TEXT NOT NULL DEFAULT ''
);
`

// Open opens (creating if needed) the database at path.
func Open(path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// _txlock=immediate: every transaction takes the write lock at BEGIN,
	// so a read-modify-write never fails half-way with SQLITE_BUSY.
	dsn := "file:" + path + "?_busy_timeout=30000&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate&_foreign_keys=0&cache=private"
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// One connection: berth processes are short-lived and the store is
	// small; a second connection would only contend with the first.
	db.SetMaxOpenConns(1)
	// The first connection (its journal_mode=WAL switch on a new file)
	// and the schema under a lock of their own: SQLite answers a race on
	// either with "database is locked" at once, without the busy wait.
	unlock, err := lockfile.Lock(context.Background(), path+".open.lock", true)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	err = ensureSchema(db)
	unlock()
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return &DB{db: db, path: path}, nil
}

// schemaVersion is PRAGMA user_version once the schema is in place.
// 3: containers.namespace; 4: pods.
const schemaVersion = 4

// ensureSchema creates the tables unless the version says they exist. The
// check is a read; the creation runs in a BEGIN IMMEDIATE transaction,
// which waits for the write lock. A bare CREATE ... IF NOT EXISTS in
// autocommit reads the schema and then upgrades to a write: when another
// process wrote in between, SQLite fails it at once with "database is
// locked" (no busy wait for an upgrade); 50 concurrent first runs hit it.
func ensureSchema(db *sql.DB) error {
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v >= schemaVersion {
		return nil
	}
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Again under the write lock: another process may have migrated.
	if err := tx.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v >= schemaVersion {
		return nil
	}
	if v >= 1 && v < 3 {
		if _, err := tx.Exec(`ALTER TABLE containers ADD COLUMN namespace TEXT NOT NULL DEFAULT ''`); err != nil {
			return fmt.Errorf("store: add the namespace column: %w", err)
		}
	}
	if _, err := tx.Exec(schema); err != nil {
		return err
	}
	if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return err
	}
	return tx.Commit()
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// Insert adds a row; a taken name wraps ErrNameInUse.
func (d *DB) Insert(ctx context.Context, r Row) error {
	t, what := d.kind.tbl(), d.kind.what()
	_, err := d.db.ExecContext(ctx, `INSERT INTO `+t+`(id, name, image_id, data, namespace) VALUES(?, ?, ?, ?, ?)`, r.ID, r.Name, r.ImageID, string(r.Data), d.ns)
	if isUnique(err) {
		if strings.Contains(err.Error(), t+".name") {
			var ns string
			if d.db.QueryRowContext(ctx, `SELECT namespace FROM `+t+` WHERE name = ?`, r.Name).Scan(&ns) == nil && ns != d.ns {
				return fmt.Errorf("the %s name %q is in use in the store namespace %q (names are unique across namespaces): %w; choose another name", what, r.Name, ns, ErrNameInUse)
			}
			return fmt.Errorf("the %s name %q is already in use: %w (remove or rename that %s, or choose another name)", what, r.Name, ErrNameInUse, what)
		}
		return fmt.Errorf("%s ID %s exists already: %w", what, r.ID, ErrNameInUse)
	}
	if err != nil {
		return fmt.Errorf("store: insert %s: %w", r.ID, err)
	}
	return nil
}

// isUnique recognises SQLite's constraint error by its text: the driver's
// typed error exists only in cgo builds.
func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// Get returns the row with ID id exactly.
func (d *DB) Get(ctx context.Context, id string) (Row, error) {
	var r Row
	var data string
	err := d.db.QueryRowContext(ctx, `SELECT id, name, image_id, data, namespace FROM `+d.kind.tbl()+` WHERE id = ?`, id).Scan(&r.ID, &r.Name, &r.ImageID, &data, &r.Namespace)
	if errors.Is(err, sql.ErrNoRows) {
		return Row{}, NotFound("no such %s: %s", d.kind.what(), id)
	}
	if err != nil {
		return Row{}, fmt.Errorf("store: get %s: %w", id, err)
	}
	r.Data = []byte(data)
	return r, nil
}

// Resolve finds a row by full ID, by name, or by a unique ID prefix, in
// docker's order.
func (d *DB) Resolve(ctx context.Context, ref string) (Row, error) {
	if ref == "" {
		return Row{}, NotFound("no such %s: an empty name or ID", d.kind.what())
	}
	rows, err := d.db.QueryContext(ctx, `SELECT id, name, image_id, data, namespace FROM `+d.kind.tbl()+` WHERE namespace = ?2 AND (id = ?1 OR name = ?1 OR (id >= ?1 AND id < ?1 || 'g'))`, strings.TrimPrefix(ref, "/"), d.ns)
	if err != nil {
		return Row{}, fmt.Errorf("store: resolve %s: %w", ref, err)
	}
	defer rows.Close()
	var byID, byName *Row
	var prefix []Row
	for rows.Next() {
		var r Row
		var data string
		if err := rows.Scan(&r.ID, &r.Name, &r.ImageID, &data, &r.Namespace); err != nil {
			return Row{}, err
		}
		r.Data = []byte(data)
		switch {
		case r.ID == ref:
			byID = &r
		case r.Name == strings.TrimPrefix(ref, "/"):
			byName = &r
		case strings.HasPrefix(r.ID, ref):
			prefix = append(prefix, r)
		}
	}
	if err := rows.Err(); err != nil {
		return Row{}, err
	}
	switch {
	case byID != nil:
		return *byID, nil
	case byName != nil:
		return *byName, nil
	case len(prefix) == 1:
		return prefix[0], nil
	case len(prefix) > 1:
		return Row{}, fmt.Errorf("%s ID prefix %q matches %d %ss: %w (give more characters)", d.kind.what(), ref, len(prefix), d.kind.what(), ErrAmbiguous)
	}
	return Row{}, NotFound("no such %s: %s", d.kind.what(), ref)
}

// List returns every row of the namespace, oldest first.
func (d *DB) List(ctx context.Context) ([]Row, error) {
	return d.list(ctx, `SELECT id, name, image_id, data, namespace FROM `+d.kind.tbl()+` WHERE namespace = ? ORDER BY rowid`, d.ns)
}

// ListAll returns every row of every namespace, oldest first: for what
// all containers share (networks, volumes, images, the name server).
func (d *DB) ListAll(ctx context.Context) ([]Row, error) {
	return d.list(ctx, `SELECT id, name, image_id, data, namespace FROM `+d.kind.tbl()+` ORDER BY rowid`)
}

func (d *DB) list(ctx context.Context, query string, args ...any) ([]Row, error) {
	rows, err := d.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var r Row
		var data string
		if err := rows.Scan(&r.ID, &r.Name, &r.ImageID, &data, &r.Namespace); err != nil {
			return nil, err
		}
		r.Data = []byte(data)
		out = append(out, r)
	}
	return out, rows.Err()
}

// UsingImage returns the IDs of the containers made from imageID.
func (d *DB) UsingImage(ctx context.Context, imageID string) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id FROM containers WHERE image_id = ? ORDER BY rowid`, imageID)
	if err != nil {
		return nil, fmt.Errorf("store: containers of image %s: %w", imageID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// Update reads row id, lets fn change it (name and data), and writes it
// back, all in one write transaction. fn returning an error aborts.
func (d *DB) Update(ctx context.Context, id string, fn func(r *Row) error) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: update %s: %w", id, err)
	}
	defer tx.Rollback()
	var r Row
	var data string
	err = tx.QueryRowContext(ctx, `SELECT id, name, image_id, data, namespace FROM `+d.kind.tbl()+` WHERE id = ?`, id).Scan(&r.ID, &r.Name, &r.ImageID, &data, &r.Namespace)
	if errors.Is(err, sql.ErrNoRows) {
		return NotFound("no such %s: %s", d.kind.what(), id)
	}
	if err != nil {
		return fmt.Errorf("store: update %s: %w", id, err)
	}
	r.Data = []byte(data)
	if err := fn(&r); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE `+d.kind.tbl()+` SET name = ?, data = ? WHERE id = ?`, r.Name, string(r.Data), id)
	if isUnique(err) {
		return fmt.Errorf("the %s name %q is already in use: %w", d.kind.what(), r.Name, ErrNameInUse)
	}
	if err != nil {
		return fmt.Errorf("store: update %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: update %s: %w", id, err)
	}
	return nil
}

// Delete removes row id, and the ID range it held; a missing one is not
// an error.
func (d *DB) Delete(ctx context.Context, id string) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: delete %s: %w", id, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+d.kind.tbl()+` WHERE id = ?`, id); err != nil {
		return fmt.Errorf("store: delete %s: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM idranges WHERE container_id = ?`, id); err != nil {
		return fmt.Errorf("store: delete %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: delete %s: %w", id, err)
	}
	return nil
}

// IDRange is a block of host IDs: [Start, Start+Size).
type IDRange struct {
	Start, Size uint32
}

// IDRanges are the host uids and gids a container in a user namespace
// of its own holds.
type IDRanges struct {
	UIDs, GIDs []IDRange
}

// HeldIDRange is a block and the container that holds it.
type HeldIDRange struct {
	IDRange
	Container string
}

// HeldIDRanges are the blocks of every container.
type HeldIDRanges struct {
	UIDs, GIDs []HeldIDRange
}

// ReserveIDRanges gives the container id host IDs: pick, called with
// every block the containers of this store hold now, chooses them (clear
// of those, or it fails), and they are recorded, all in one write
// transaction, so that two concurrent reservations never get overlapping
// blocks. They are freed with the container's row (Delete). A container
// that holds some already keeps them.
func (d *DB) ReserveIDRanges(ctx context.Context, id string, pick func(held HeldIDRanges) (IDRanges, error)) (IDRanges, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return IDRanges{}, fmt.Errorf("store: reserve IDs for %s: %w", id, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT container_id, kind, start, size FROM idranges ORDER BY rowid`)
	if err != nil {
		return IDRanges{}, fmt.Errorf("store: reserve IDs for %s: %w", id, err)
	}
	var held HeldIDRanges
	var mine IDRanges
	for rows.Next() {
		var h HeldIDRange
		var kind string
		if err := rows.Scan(&h.Container, &kind, &h.Start, &h.Size); err != nil {
			rows.Close()
			return IDRanges{}, err
		}
		switch {
		case h.Container == id && kind == "uid":
			mine.UIDs = append(mine.UIDs, h.IDRange)
		case h.Container == id:
			mine.GIDs = append(mine.GIDs, h.IDRange)
		case kind == "uid":
			held.UIDs = append(held.UIDs, h)
		default:
			held.GIDs = append(held.GIDs, h)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return IDRanges{}, err
	}
	if len(mine.UIDs) > 0 {
		return mine, nil
	}
	r, err := pick(held)
	if err != nil {
		return IDRanges{}, err
	}
	for kind, list := range map[string][]IDRange{"uid": r.UIDs, "gid": r.GIDs} {
		for _, x := range list {
			if _, err := tx.ExecContext(ctx, `INSERT INTO idranges(container_id, kind, start, size) VALUES(?, ?, ?, ?)`, id, kind, x.Start, x.Size); err != nil {
				return IDRanges{}, fmt.Errorf("store: reserve IDs for %s: %w", id, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return IDRanges{}, fmt.Errorf("store: reserve IDs for %s: %w", id, err)
	}
	return r, nil
}

// Volume rows: name -> JSON.

// PutVolume inserts a volume; an existing name wraps ErrNameInUse.
func (d *DB) PutVolume(ctx context.Context, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = d.db.ExecContext(ctx, `INSERT INTO volumes(name, data) VALUES(?, ?)`, name, string(data))
	if isUnique(err) {
		return fmt.Errorf("volume %q exists already: %w", name, ErrNameInUse)
	}
	return err
}

// Volumes returns every volume's JSON by name.
func (d *DB) Volumes(ctx context.Context) (map[string][]byte, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT name, data FROM volumes`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var n, data string
		if err := rows.Scan(&n, &data); err != nil {
			return nil, err
		}
		out[n] = []byte(data)
	}
	return out, rows.Err()
}

// DeleteVolume removes a volume row, reporting whether it existed.
func (d *DB) DeleteVolume(ctx context.Context, name string) (bool, error) {
	res, err := d.db.ExecContext(ctx, `DELETE FROM volumes WHERE name = ?`, name)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// NotFound is an error that says what is missing in its own words ("no
// such volume: x") and is ErrNotFound: the sentinel's text is not
// repeated after it.
func NotFound(format string, args ...any) error {
	return notFoundError(fmt.Sprintf(format, args...))
}

type notFoundError string

func (e notFoundError) Error() string        { return string(e) }
func (e notFoundError) Is(target error) bool { return target == ErrNotFound }
