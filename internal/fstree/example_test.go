// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package fstree_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/stacklok/go-microvm/internal/fstree"
)

func ExampleOptions_RemoveAt() {
	root, err := os.MkdirTemp("", "fstree-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	os.MkdirAll(filepath.Join(root, "trash", "vm1", "rootfs"), 0o755)
	os.WriteFile(filepath.Join(root, "trash", "vm1", "rootfs", "disk.img"), []byte("data"), 0o644)

	// Give the deletion a budget; what does not fit stays for next time.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	trash, err := fstree.OpenDir(openRoot(root), "trash")
	if err != nil {
		log.Fatal(err)
	}
	defer trash.Close()
	res, err := fstree.Options{}.RemoveAt(ctx, trash, "vm1", filepath.Join(root, "trash", "vm1"))
	if errors.Is(err, fstree.ErrBudget) {
		fmt.Println("budget spent, the rest is left for the next run")
	} else if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("removed %d files and %d directories\n", res.Files, res.Dirs)
	// Output: removed 1 files and 2 directories
}

func ExampleOptions_SizeAt() {
	root, err := os.MkdirTemp("", "fstree-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	os.MkdirAll(filepath.Join(root, "tree", "a"), 0o755)
	os.WriteFile(filepath.Join(root, "tree", "a", "f"), make([]byte, 10000), 0o644)
	os.Symlink("/", filepath.Join(root, "tree", "a", "escape"))

	res, err := fstree.Options{}.SizeAt(context.Background(), openRoot(root), "tree", filepath.Join(root, "tree"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d files (the symlink is not followed), %d directories, at least 10000 bytes: %v\n",
		res.Files, res.Dirs, res.Bytes >= 10000)
	// Output: 2 files (the symlink is not followed), 2 directories, at least 10000 bytes: true
}

func openRoot(path string) *os.File {
	f, err := os.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	return f
}
