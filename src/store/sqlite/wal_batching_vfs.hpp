// A VFS over SQLite's default one that gathers the WAL appends of a commit into one write.
// SQLite writes every frame of a commit as two system calls (its 24-byte header, then the
// page), so a group commit that touches 300 pages costs 600 pwrite calls; gathered, it
// costs one.
//
// Durability is unchanged: the gathered bytes are written when the commit frame (the one
// whose header carries the database size) has been handed over, inside that same xWrite
// call, so an error reaches SQLite as the commit's error, and the frames are in the file
// before SQLite publishes the commit to readers (which it does only after its writes
// return). They are also written before any read, sync, truncation, size query or close of
// the WAL. Only for synchronous=NORMAL or OFF, where SQLite does not sync at commit and
// never splits a frame's writes.
#pragma once

namespace chat::store::sqlite {

// Registers the VFS with SQLite once per process and returns its name (for
// sqlite3_open_v2).
const char* wal_batching_vfs();

}  // namespace chat::store::sqlite
