#!/usr/bin/env bash
# Tools a new user runs on a cluster mount (issue 12's targets): git (init, add, commit, log,
# gc, fsck), sqlite3 with a rollback journal and with WAL (1,000 rows in transactions), an
# editor's save (write a temporary file, fsync, rename over the original), `echo >>` and
# truncate. Everything is read back again after an unmount and a new mount. Needs root (apt
# for sqlite3 when missing), FUSE and git.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/mount-lib.bash"
t=$(mktemp -d)
P=$PETREL_BIN
cpid=
cleanup() {
    cd / || true
    mount_stop "$t/mnt"
    if [ -n "$cpid" ]; then kill -TERM "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null; fi
    rm -rf "$t"
}
trap cleanup EXIT
if [ "$(id -u)" != 0 ] || ! fuse_available; then
    pass "skipped: needs root and FUSE"
    finish
    exit 0
fi
if ! command -v sqlite3 >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q sqlite3 >"$t/apt.log" 2>&1 ||
        { apt-get update -q >>"$t/apt.log" 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q sqlite3 >>"$t/apt.log" 2>&1; }
fi
for tool in git sqlite3; do
    command -v $tool >/dev/null 2>&1 || { fail "$tool available" "not installed and apt-get could not install it"; }
done

"$P" cluster start --dir "$t/var" --shards 2 --block-services 3 >"$t/cluster.out" 2>"$t/cluster.err" &
cpid=$!
A=
deadline=$((SECONDS + 120))
while [ $SECONDS -lt $deadline ] && [ -z "$A" ]; do
    A=$(head -n 1 "$t/cluster.out" 2>/dev/null)
    kill -0 "$cpid" 2>/dev/null || break
    [ -n "$A" ] || sleep 0.05
done
if [ -z "$A" ] || ! mount_start "$A" "$t/mnt"; then
    fail "cluster and mount" "$(cat "$t/cluster.err" 2>/dev/null)"
    finish
    exit 1
fi
m=$t/mnt

# --- git ---------------------------------------------------------------------------------------
export GIT_CONFIG_NOSYSTEM=1 HOME="$t/home" GIT_AUTHOR_NAME=petrel GIT_AUTHOR_EMAIL=p@example.org \
    GIT_COMMITTER_NAME=petrel GIT_COMMITTER_EMAIL=p@example.org
mkdir -p "$HOME"
g() { git -C "$m/repo" "$@"; }
if command -v git >/dev/null 2>&1; then
    expect_ok "git init" git init -q "$m/repo"
    for i in 1 2 3; do
        printf 'line %s\n' $(seq 1 $((i * 50))) >"$m/repo/file$i.txt"
        g add "file$i.txt" >/dev/null 2>&1 && g commit -q -m "commit $i" >/dev/null 2>&1 ||
            fail "git add + commit $i" "$(g status 2>&1 | head -n 3)"
    done
    echo "more" >>"$m/repo/file1.txt"
    g commit -q -am "append" >/dev/null 2>&1 || fail "git commit -a" "$(g status 2>&1 | head -n 3)"
    expect_eq "git log shows 4 commits" 4 "$(g log --oneline 2>/dev/null | wc -l)"
    expect_ok "git gc" g gc -q
    expect_ok "git fsck" g fsck --strict --no-progress
fi

# --- sqlite3: rollback journal, then WAL ----------------------------------------------------------
sql_rows() { # DB MODE: 1,000 rows in 10 transactions
    local db=$1 mode=$2 i j
    {
        echo "PRAGMA journal_mode=$mode;"
        echo "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);"
        for i in $(seq 0 9); do
            echo "BEGIN;"
            for j in $(seq 1 100); do echo "INSERT INTO t(v) VALUES('row $((i * 100 + j))');"; done
            echo "COMMIT;"
        done
    } | sqlite3 "$db" >/dev/null
}
if command -v sqlite3 >/dev/null 2>&1; then
    sql_rows "$m/journal.db" delete && pass "sqlite3 rollback journal: 1,000 rows in transactions" ||
        fail "sqlite3 rollback journal" "exited $?"
    sql_rows "$m/wal.db" wal && pass "sqlite3 WAL: 1,000 rows in transactions" ||
        fail "sqlite3 WAL" "exited $?"
    expect_out "sqlite3 query (journal)" "1000|row 1000" sqlite3 "$m/journal.db" "SELECT count(*), (SELECT v FROM t WHERE k = 1000) FROM t;"
    # a checkpoint folds the WAL back into the database before the unmount
    expect_ok "sqlite3 WAL checkpoint" sqlite3 "$m/wal.db" "PRAGMA wal_checkpoint(TRUNCATE);"
fi

# --- an editor's save, echo >>, truncate ----------------------------------------------------------
printf 'first version\n' >"$m/doc.txt"
python3 - "$m" <<'EOF' && pass "editor save: temporary file, fsync, rename over" || fail "editor save" "python exited $?"
import os, sys
d = sys.argv[1]
tmp = os.path.join(d, ".doc.txt.swp")
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"second version\n")
os.fsync(fd)
os.close(fd)
os.rename(tmp, os.path.join(d, "doc.txt"))
EOF
printf 'log 1\n' >"$m/app.log"
for i in 2 3 4 5; do echo "log $i" >>"$m/app.log" || fail "echo >> $i" "exited $?"; done
printf '0123456789' >"$m/cut"
truncate -s 4 "$m/cut" || fail "truncate" "exited $?"

# --- after a new mount -------------------------------------------------------------------------------
mount_stop "$m" || fail "unmount" "still mounted"
mount_start "$A" "$m" || { fail "mount again" "did not mount"; finish; exit 1; }
if command -v git >/dev/null 2>&1; then
    expect_eq "git log after the remount" "append" "$(g log -1 --format=%s 2>/dev/null)"
    expect_ok "git fsck after the remount" g fsck --strict --no-progress
    expect_eq "a committed file after the remount" "$(printf 'line %s\n' $(seq 1 50); echo more)" "$(g show HEAD:file1.txt 2>/dev/null)"
fi
if command -v sqlite3 >/dev/null 2>&1; then
    expect_out "sqlite3 journal rows after the remount" "1000" sqlite3 "$m/journal.db" "SELECT count(*) FROM t;"
    expect_out "sqlite3 WAL rows after the remount" "1000" sqlite3 "$m/wal.db" "SELECT count(*) FROM t;"
    expect_out "sqlite3 integrity after the remount" "ok" sqlite3 "$m/wal.db" "PRAGMA integrity_check;"
fi
expect_eq "the editor's save after the remount" "second version" "$(cat "$m/doc.txt")"
expect_eq "appended lines after the remount" "$(printf 'log %s\n' 1 2 3 4 5)" "$(cat "$m/app.log")"
expect_eq "truncated file after the remount" "0123" "$(cat "$m/cut")"
finish
