// Command tlogcheck verifies an evidence vault's tiled log (C2SP tlog-tiles) with the Go
// team's own code: golang.org/x/mod/sumdb/note for the signed checkpoint and
// golang.org/x/mod/sumdb/tlog for tile hashes, inclusion and consistency proofs. It is
// an independent second implementation for the interop test (tests/test_tiles_go.py).
//
// Usage:
//
//	tlogcheck -vkey VERIFIER_KEY [-old OLD_CHECKPOINT_FILE] [-every N] SOURCE
//
// SOURCE is a directory (a mirror) or an http(s):// prefix. Path mapping: x/mod names
// hash tiles tile/H/L/N[.p/W] with the height in the path; C2SP drops it (height is
// always 8): tile/L/N[.p/W]. x/mod's data tiles (tile/H/data/N, raw record text) have no
// counterpart; C2SP entry bundles live at tile/entries/N[.p/W] as big-endian
// uint16-length-prefixed entries, which this program decodes itself.
//
// Output: one "ok ..." line per check; on the first failure "FAIL: ..." and exit 1.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8
const width = 1 << height

var errMissing = errors.New("not found")

var httpClient = &http.Client{Timeout: 30 * time.Second}

// source reads a path under the log's prefix from a directory or over HTTP.
type source struct{ where string }

func (s source) get(path string) ([]byte, error) {
	if strings.HasPrefix(s.where, "http://") || strings.HasPrefix(s.where, "https://") {
		resp, err := httpClient.Get(strings.TrimRight(s.where, "/") + "/" + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return nil, errMissing
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
		}
		return io.ReadAll(resp.Body)
	}
	data, err := os.ReadFile(filepath.Join(s.where, filepath.FromSlash(path)))
	if os.IsNotExist(err) {
		return nil, errMissing
	}
	return data, err
}

// c2spPath maps an x/mod tile to its C2SP path: drop the height element.
func c2spPath(t tlog.Tile) string {
	return "tile/" + strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", height))
}

func bundlePath(n int64, w int) string {
	// the entry bundle has the path of the level-0 tile, with "entries" for the level
	p := c2spPath(tlog.Tile{H: height, L: 0, N: n, W: w})
	return "tile/entries/" + strings.TrimPrefix(p, "tile/0/")
}

// tileReader serves tiles to tlog.TileHashReader, which checks them against the tree.
type tileReader struct{ src source }

func (r tileReader) Height() int { return height }

func (r tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := r.src.get(c2spPath(t))
		if errors.Is(err, errMissing) && t.W < width {
			// C2SP lets a log delete a partial tile once the full one exists
			full := t
			full.W = width
			data, err = r.src.get(c2spPath(full))
			if err == nil && len(data) >= t.W*tlog.HashSize {
				data = data[:t.W*tlog.HashSize]
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", c2spPath(t), err)
		}
		out[i] = data
	}
	return out, nil
}

func (r tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

type checkpoint struct {
	origin string
	tree   tlog.Tree
}

func openCheckpoint(msg []byte, verifiers note.Verifiers) (checkpoint, error) {
	n, err := note.Open(msg, verifiers)
	if err != nil {
		return checkpoint{}, err
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 {
		return checkpoint{}, errors.New("malformed checkpoint")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || lines[1] != strconv.FormatInt(size, 10) {
		return checkpoint{}, errors.New("malformed checkpoint size")
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		return checkpoint{}, errors.New("malformed checkpoint root")
	}
	var h tlog.Hash
	copy(h[:], raw)
	return checkpoint{lines[0], tlog.Tree{N: size, Hash: h}}, nil
}

func decodeBundle(data []byte) ([][]byte, error) {
	var out [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, errors.New("bundle ends inside a length")
		}
		n := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+n {
			return nil, errors.New("entry runs past the bundle")
		}
		out = append(out, data[2:2+n])
		data = data[2+n:]
	}
	return out, nil
}

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	vkey := flag.String("vkey", "", "the log's verifier key")
	oldFile := flag.String("old", "", "an older checkpoint note: prove consistency with it")
	every := flag.Int64("every", 1, "prove inclusion of every N-th entry")
	flag.Parse()
	if flag.NArg() != 1 || *vkey == "" {
		fmt.Fprintln(os.Stderr, "usage: tlogcheck -vkey KEY [-old FILE] [-every N] DIR|URL")
		os.Exit(2)
	}
	src := source{flag.Arg(0)}
	v, err := note.NewVerifier(*vkey)
	if err != nil {
		fail("verifier key: %v", err)
	}
	verifiers := note.VerifierList(v)

	msg, err := src.get("checkpoint")
	if err != nil {
		fail("checkpoint: %v", err)
	}
	cp, err := openCheckpoint(msg, verifiers)
	if err != nil {
		fail("checkpoint: %v", err)
	}
	fmt.Printf("ok checkpoint %s size %d signed by %s\n", cp.origin, cp.tree.N, v.Name())

	thr := tlog.TileHashReader(cp.tree, tileReader{src})
	root, err := tlog.TreeHash(cp.tree.N, thr)
	if err != nil || root != cp.tree.Hash {
		fail("tree hash from the tiles: %v (got %v)", err, root)
	}
	fmt.Println("ok tree hash from the tiles")

	// every published hash tile is exactly what the tree's hashes make. x/mod's NewTiles
	// lists a partial tile of every width (the sumdb publishes them all); C2SP has the
	// full tiles and, per level, the partial tile of this tree's width only
	var tiles []tlog.Tile
	for _, t := range tlog.NewTiles(height, 0, cp.tree.N) {
		if t.W == width || int64(t.W) == (cp.tree.N>>(height*t.L))%width {
			tiles = append(tiles, t)
		}
	}
	for _, t := range tiles {
		want, err := tlog.ReadTileData(t, thr)
		if err != nil {
			fail("%s: %v", c2spPath(t), err)
		}
		got, err := tileReader{src}.ReadTiles([]tlog.Tile{t})
		if err != nil || !bytes.Equal(got[0], want) {
			fail("%s does not match the tree", c2spPath(t))
		}
	}
	fmt.Printf("ok %d hash tiles\n", len(tiles))

	// every entry hashes to its leaf; inclusion proofs for every N-th
	proved := 0
	for n := int64(0); n*width < cp.tree.N; n++ {
		w := int(cp.tree.N - n*width)
		if w > width {
			w = width
		}
		data, err := src.get(bundlePath(n, w))
		if errors.Is(err, errMissing) && w < width {
			data, err = src.get(bundlePath(n, width))
		}
		if err != nil {
			fail("%s: %v", bundlePath(n, w), err)
		}
		entries, err := decodeBundle(data)
		if err != nil || len(entries) < w {
			fail("%s: malformed bundle (%v)", bundlePath(n, w), err)
		}
		for i := 0; i < w; i++ {
			idx := n*width + int64(i)
			leaf := tlog.RecordHash(entries[i])
			hashes, err := thr.ReadHashes([]int64{tlog.StoredHashIndex(0, idx)})
			if err != nil || hashes[0] != leaf {
				fail("entry %d does not hash to its leaf", idx)
			}
			if idx%*every == 0 || idx == cp.tree.N-1 {
				p, err := tlog.ProveRecord(cp.tree.N, idx, thr)
				if err != nil {
					fail("inclusion proof of %d: %v", idx, err)
				}
				if err := tlog.CheckRecord(p, cp.tree.N, cp.tree.Hash, idx, leaf); err != nil {
					fail("inclusion of %d: %v", idx, err)
				}
				proved++
			}
		}
	}
	fmt.Printf("ok %d entries, %d inclusion proofs\n", cp.tree.N, proved)

	if *oldFile != "" {
		oldMsg, err := os.ReadFile(*oldFile)
		if err != nil {
			fail("old checkpoint: %v", err)
		}
		old, err := openCheckpoint(oldMsg, verifiers)
		if err != nil {
			fail("old checkpoint: %v", err)
		}
		if old.origin != cp.origin || old.tree.N > cp.tree.N {
			fail("old checkpoint (%s, %d) is not an earlier state of %s", old.origin, old.tree.N, cp.origin)
		}
		p, err := tlog.ProveTree(cp.tree.N, old.tree.N, thr)
		if err != nil {
			fail("consistency proof: %v", err)
		}
		if err := tlog.CheckTree(p, cp.tree.N, cp.tree.Hash, old.tree.N, old.tree.Hash); err != nil {
			fail("consistency %d -> %d: %v", old.tree.N, cp.tree.N, err)
		}
		fmt.Printf("ok consistency %d -> %d\n", old.tree.N, cp.tree.N)
	}
}
