// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/stacklok/go-microvm/gc"
)

// TestDocSink: the streamed `list --json` document is the listJSON
// contract, indented as one encoded whole would be, for no, one and many
// directories, with and without trash.
func TestDocSink(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 3} {
		for _, withTrash := range []bool{false, true} {
			t.Run(fmt.Sprintf("dirs=%d,trash=%v", n, withTrash), func(t *testing.T) {
				var out bytes.Buffer
				s := newDocSink(&out, "/r")
				want := listJSON{Root: "/r", Roots: []rootJSON{{Path: "/r"}}, Dirs: []dirJSON{}, Trash: []trashJSON{}, Counts: map[gc.Class]int{}}
				for i := range n {
					b := int64(i)
					d := dirJSON{candidateJSON: candidateJSON{Path: fmt.Sprintf("/r/vm%d", i), Class: gc.ClassOrphan, Reason: "run-ended", Detail: "a \"quoted\" <detail>", PID: i}, Bytes: &b}
					s.dir("/r", &d)
					want.Dirs = append(want.Dirs, d)
					want.Counts[gc.ClassOrphan]++
				}
				if withTrash {
					tj := trashJSON{Path: "/r/.go-microvm-gc-trash", Entries: 2}
					s.trash("/r", &tj)
					want.Trash = append(want.Trash, tj)
				}
				s.end(&summaryLine{Roots: want.Roots, Counts: want.Counts})

				var got listJSON
				if err := json.Unmarshal(out.Bytes(), &got); err != nil {
					t.Fatalf("not JSON: %v\n%s", err, out.String())
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("got %+v\nwant %+v", got, want)
				}
				var compact, indented bytes.Buffer
				if err := json.Compact(&compact, out.Bytes()); err != nil {
					t.Fatal(err)
				}
				if err := json.Indent(&indented, compact.Bytes(), "", "  "); err != nil {
					t.Fatal(err)
				}
				indented.WriteByte('\n')
				if indented.String() != out.String() {
					t.Errorf("not indented as a whole document:\n%s\nwant:\n%s", out.String(), indented.String())
				}
			})
		}
	}
}

// TestDocSinkStreams: the directories reach the writer as they are
// decided, before the listing ends, so `list --json` holds none of them.
func TestDocSinkStreams(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	s := newDocSink(&out, "/r")
	const n = 1000
	for i := range n {
		s.dir("/r", &dirJSON{candidateJSON: candidateJSON{Path: fmt.Sprintf("/r/vm%04d", i), Class: gc.ClassLive}})
	}
	written := out.Len()
	s.end(&summaryLine{Roots: []rootJSON{{Path: "/r"}}, Counts: map[gc.Class]int{gc.ClassLive: n}})
	if written < out.Len()*9/10 {
		t.Errorf("only %d of %d bytes written before the end: the directories are held", written, out.Len())
	}
}
