// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/sysat"
)

// direntBufSize is the getdents buffer of one directory reader: about
// 1,000 entries of a root's listing per syscall.
const direntBufSize = 32 << 10

// dirReader lists a directory with getdents(2) into one reused buffer,
// taking each entry's type and inode from the listing itself, so that
// nothing is stat'ed and nothing but the names is allocated.
type dirReader struct {
	fd       int
	buf      []byte
	pos, end int
	// plain, when set, lists instead (BenchmarkFastPaths).
	plain *plainReader
}

// newDirReader opens the directory fd again (its own open file
// description, so fd's offset stays the caller's) for listing.
func newDirReader(fd int, plain bool) (*dirReader, error) {
	if plain {
		p, err := newPlainReader(fd)
		return &dirReader{plain: p}, err
	}
	again, err := sysat.Openat(fd, ".", sysat.DirFlags, 0)
	if err != nil {
		return nil, err
	}
	return &dirReader{fd: again, buf: make([]byte, direntBufSize)}, nil
}

// next returns the next entry but "." and "..", or ok false at the end.
func (r *dirReader) next() (e dirent, ok bool, err error) {
	if r.plain != nil {
		return r.plain.next()
	}
	for {
		if r.pos >= r.end {
			n, err := sysat.Getdents(r.fd, r.buf)
			if err != nil {
				return dirent{}, false, err
			}
			if n <= 0 {
				return dirent{}, false, nil
			}
			r.pos, r.end = 0, n
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8,
		// then the NUL-terminated name.
		rec := r.buf[r.pos:r.end]
		if len(rec) < 19 {
			r.pos = r.end
			continue
		}
		reclen := int(binary.NativeEndian.Uint16(rec[16:18]))
		if reclen < 19 || reclen > len(rec) {
			r.pos = r.end
			continue
		}
		r.pos += reclen
		name := rec[19:reclen]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		if isDotName(name) {
			continue
		}
		return dirent{
			name: string(name),
			ino:  binary.NativeEndian.Uint64(rec[0:8]),
			typ:  direntType(rec[18]),
		}, true, nil
	}
}

// close closes the reader's descriptor.
func (r *dirReader) close() {
	if r.plain != nil {
		r.plain.close()
		return
	}
	_ = unix.Close(r.fd)
}

func isDotName(name []byte) bool {
	return len(name) == 1 && name[0] == '.' || len(name) == 2 && name[0] == '.' && name[1] == '.'
}

func direntType(t uint8) entryType {
	switch t {
	case unix.DT_DIR:
		return typeDir
	case unix.DT_UNKNOWN:
		return typeUnknown
	}
	return typeOther
}
