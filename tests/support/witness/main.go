// Command witness is a small, independent C2SP tlog-witness for the vault's tests.
//
// It implements POST <prefix>/add-checkpoint (https://c2sp.org/tlog-witness) and the
// monitoring GET <prefix>/<hex SHA-256 of the origin>/checkpoint, and returns Ed25519
// cosignatures in the C2SP tlog-cosignature v1 format. It shares no code with the vault:
// the log's signed note is checked with golang.org/x/mod/sumdb/note and the consistency
// proof with golang.org/x/mod/sumdb/tlog, so a vault bug cannot hide behind a shared one.
//
// Build offline with Debian's golang-go and golang-golang-x-mod-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o witness .
//
// Usage:
//
//	witness -name witness.test/w1 -key seed.hex -state state.json \
//	        -log 'evidence-vault.test/*=<vault verifier key>' [-addr 127.0.0.1:0] [-time T]
//
// -key holds the 32-byte Ed25519 seed in hex (created when missing). -log may be repeated;
// an origin ending in '*' matches every origin with that prefix (one log per vault client).
// -time fixes the cosignature timestamp (test vectors). On start it prints two lines to
// stdout: "vkey <witness verifier key, type 0x04>" and "url http://<host:port>".
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const (
	// cosignature key id / vkey type byte for Ed25519 tlog-cosignature/v1
	algCosignatureV1 = 0x04
	maxBody          = 1 << 20
	maxProofLines    = 63
)

type logKey struct {
	origin string // exact origin, or a prefix when prefix is true
	prefix bool
	vkey   string
}

type logState struct {
	Size int64  `json:"size"`
	Root string `json:"root"` // base64
	Note string `json:"note"` // the latest cosigned checkpoint, with our cosignature
}

type witness struct {
	name      string
	key       ed25519.PrivateKey
	keyID     [4]byte
	logs      []logKey
	statePath string
	fixedTime int64

	mu    sync.Mutex // check-and-update of the state is atomic (tlog-witness requires it)
	state map[string]logState
}

type logFlags []string

func (f *logFlags) String() string     { return strings.Join(*f, ",") }
func (f *logFlags) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	var logs logFlags
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	name := flag.String("name", "witness.test/w1", "witness name (key name of its cosignatures)")
	keyPath := flag.String("key", "witness.key", "file with the hex Ed25519 seed (made if missing)")
	statePath := flag.String("state", "witness-state.json", "file with the per-origin state")
	fixed := flag.Int64("time", 0, "cosignature timestamp (0: the current time)")
	flag.Var(&logs, "log", "ORIGIN=VKEY of a log to witness (ORIGIN may end in '*'); repeatable")
	flag.Parse()

	w, err := newWitness(*name, *keyPath, *statePath, *fixed, logs)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("vkey %s\nurl http://%s\n", w.vkey(), ln.Addr().String())
	os.Stdout.Sync()
	log.Fatal(http.Serve(ln, w))
}

func newWitness(name, keyPath, statePath string, fixed int64, logs []string) (*witness, error) {
	seed, err := loadSeed(keyPath)
	if err != nil {
		return nil, err
	}
	w := &witness{name: name, key: ed25519.NewKeyFromSeed(seed), statePath: statePath,
		fixedTime: fixed, state: map[string]logState{}}
	pub := w.key.Public().(ed25519.PublicKey)
	h := sha256.Sum256(append([]byte(name+"\n"+string([]byte{algCosignatureV1})), pub...))
	copy(w.keyID[:], h[:4])
	for _, spec := range logs {
		i := strings.Index(spec, "=")
		if i <= 0 {
			return nil, fmt.Errorf("-log %q: want ORIGIN=VKEY", spec)
		}
		origin, vkey := spec[:i], spec[i+1:]
		if _, err := note.NewVerifier(vkey); err != nil {
			return nil, fmt.Errorf("-log %q: %v", spec, err)
		}
		lk := logKey{origin: origin, vkey: vkey}
		if strings.HasSuffix(origin, "*") {
			lk.origin, lk.prefix = strings.TrimSuffix(origin, "*"), true
		}
		w.logs = append(w.logs, lk)
	}
	if raw, err := os.ReadFile(statePath); err == nil {
		if err := json.Unmarshal(raw, &w.state); err != nil {
			return nil, fmt.Errorf("state %s: %v", statePath, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return w, nil
}

func loadSeed(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		seed := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, err
		}
		return seed, os.WriteFile(path, []byte(hex.EncodeToString(seed)+"\n"), 0o600)
	}
	if err != nil {
		return nil, err
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s: want %d bytes in hex", path, ed25519.SeedSize)
	}
	return seed, nil
}

func (w *witness) vkey() string {
	pub := w.key.Public().(ed25519.PublicKey)
	key := append([]byte{algCosignatureV1}, pub...)
	return fmt.Sprintf("%s+%s+%s", w.name, hex.EncodeToString(w.keyID[:]),
		base64.StdEncoding.EncodeToString(key))
}

func (w *witness) verifiers(origin string) []note.Verifier {
	var out []note.Verifier
	for _, lk := range w.logs {
		if lk.origin == origin || (lk.prefix && strings.HasPrefix(origin, lk.origin)) {
			v, _ := note.NewVerifier(lk.vkey) // checked at start
			out = append(out, v)
		}
	}
	return out
}

func (w *witness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/add-checkpoint"):
		w.addCheckpoint(rw, r)
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/checkpoint"):
		w.getCheckpoint(rw, r)
	default:
		http.NotFound(rw, r)
	}
}

// request is a parsed add-checkpoint body.
type request struct {
	old   int64
	proof tlog.TreeProof
	note  []byte
}

func parseRequest(body []byte) (*request, error) {
	i := bytes.Index(body, []byte("\n\n"))
	if i < 0 {
		return nil, errors.New("no empty line before the checkpoint")
	}
	head, msg := strings.Split(string(body[:i]), "\n"), body[i+2:]
	if !strings.HasPrefix(head[0], "old ") {
		return nil, errors.New("the first line is not an old size line")
	}
	old, err := parseSize(strings.TrimPrefix(head[0], "old "))
	if err != nil {
		return nil, err
	}
	if len(head)-1 > maxProofLines {
		return nil, errors.New("too many consistency proof lines")
	}
	req := &request{old: old, note: msg}
	for _, line := range head[1:] {
		h, err := tlog.ParseHash(line)
		if err != nil {
			return nil, fmt.Errorf("bad proof line: %v", err)
		}
		req.proof = append(req.proof, h)
	}
	return req, nil
}

func parseSize(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n, nil
}

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

func parseCheckpoint(text string) (*checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return nil, errors.New("malformed checkpoint")
	}
	size, err := parseSize(lines[1])
	if err != nil {
		return nil, err
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return nil, err
	}
	return &checkpoint{origin: lines[0], size: size, root: root}, nil
}

func fail(rw http.ResponseWriter, code int, format string, args ...interface{}) {
	log.Printf("refused (%d): %s", code, fmt.Sprintf(format, args...))
	http.Error(rw, fmt.Sprintf(format, args...), code)
}

func (w *witness) addCheckpoint(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		fail(rw, http.StatusBadRequest, "unreadable or oversized body")
		return
	}
	req, err := parseRequest(body)
	if err != nil {
		fail(rw, http.StatusBadRequest, "%v", err)
		return
	}
	origin := string(req.note)
	if i := strings.IndexByte(origin, '\n'); i >= 0 {
		origin = origin[:i]
	}
	known := w.verifiers(origin)
	if len(known) == 0 {
		fail(rw, http.StatusNotFound, "unknown log origin")
		return
	}
	n, err := note.Open(req.note, note.VerifierList(known...))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			fail(rw, http.StatusForbidden, "checkpoint not signed by the log: %v", err)
		} else {
			fail(rw, http.StatusBadRequest, "malformed note: %v", err)
		}
		return
	}
	cp, err := parseCheckpoint(n.Text)
	if err != nil || cp.origin != origin {
		fail(rw, http.StatusBadRequest, "malformed checkpoint")
		return
	}
	if req.old > cp.size {
		fail(rw, http.StatusBadRequest, "old size %d exceeds the checkpoint size %d", req.old, cp.size)
		return
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.state[origin]
	if req.old != st.Size {
		log.Printf("conflict: old size %d, latest cosigned %d", req.old, st.Size)
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", st.Size)
		return
	}
	if code, why := checkConsistency(req, cp, st); code != 0 {
		fail(rw, code, "%s", why)
		return
	}
	line := w.cosign(n.Text)
	st = logState{Size: cp.size, Root: base64.StdEncoding.EncodeToString(cp.root[:]),
		Note: string(req.note) + line}
	if err := w.persist(origin, st); err != nil {
		fail(rw, http.StatusInternalServerError, "cannot persist state: %v", err)
		return
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(rw, line)
}

// checkConsistency applies tlog-witness's checks; a non-zero code refuses the checkpoint.
func checkConsistency(req *request, cp *checkpoint, st logState) (int, string) {
	if cp.size == 0 && cp.root != tlog.Hash(sha256.Sum256(nil)) {
		return http.StatusUnprocessableEntity, "a checkpoint of size 0 must have the empty root"
	}
	if req.old == 0 {
		if len(req.proof) != 0 {
			return http.StatusUnprocessableEntity, "a proof from size 0 must be empty"
		}
		return 0, ""
	}
	oldRoot, err := tlog.ParseHash(st.Root)
	if err != nil {
		return http.StatusInternalServerError, "bad stored root"
	}
	if req.old == cp.size {
		if cp.root != oldRoot {
			return http.StatusUnprocessableEntity, "forked: same size, different root"
		}
		return 0, ""
	}
	if err := tlog.CheckTree(req.proof, cp.size, cp.root, req.old, oldRoot); err != nil {
		return http.StatusUnprocessableEntity, "consistency proof does not verify"
	}
	return 0, ""
}

// cosign returns a tlog-cosignature/v1 signature line over the checkpoint text.
func (w *witness) cosign(text string) string {
	ts := w.fixedTime
	if ts == 0 {
		ts = time.Now().Unix()
	}
	msg := fmt.Sprintf("cosignature/v1\ntime %d\n%s", ts, text)
	sig := ed25519.Sign(w.key, []byte(msg))
	blob := make([]byte, 0, 4+8+len(sig))
	blob = append(blob, w.keyID[:]...)
	blob = binary.BigEndian.AppendUint64(blob, uint64(ts))
	blob = append(blob, sig...)
	return fmt.Sprintf("— %s %s\n", w.name, base64.StdEncoding.EncodeToString(blob))
}

// persist writes the whole state to a new file and renames it over the old one.
func (w *witness) persist(origin string, st logState) error {
	next := make(map[string]logState, len(w.state)+1)
	for k, v := range w.state {
		next[k] = v
	}
	next[origin] = st
	raw, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(w.statePath), ".state-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), w.statePath); err != nil {
		return err
	}
	w.state = next
	return nil
}

func (w *witness) getCheckpoint(rw http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 2 {
		http.NotFound(rw, r)
		return
	}
	want := parts[len(parts)-2]
	w.mu.Lock()
	defer w.mu.Unlock()
	for origin, st := range w.state {
		h := sha256.Sum256([]byte(origin))
		if hex.EncodeToString(h[:]) == want {
			rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(rw, st.Note)
			return
		}
	}
	http.NotFound(rw, r)
}
