#!/usr/bin/env bash
# The CLI's file commands on local locations: happy paths and error paths (unknown options,
# missing files, bad locations), and --help for every command.
set -u
. "$(dirname "$0")/../lib.sh"
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
P=$PETREL_BIN
cd "$t" || exit 1

# Every command the build has (the table in main.c), and at least the file commands.
cmds=$("$P" --help | awk '/^  [a-z]/ { print $1 }')
for c in ls stat cat cp mkdir rm mv df mount cluster crc32c; do
    case " $(echo $cmds) " in *" $c "*) ;; *) fail "command $c" "missing from petrel --help" ;; esac
done
for c in $cmds; do
    out=$("$P" "$c" --help 2>&1); code=$?
    case "$out" in "usage: petrel $c"*) [ $code = 0 ] && pass "$c --help" || fail "$c --help" "exit $code" ;;
        *) fail "$c --help" "printed '$out'" ;; esac
done
expect_ok "petrel --help" "$P" --help
expect_fail "unknown command" "unknown command" "$P" frobnicate

mkdir -p src/sub/deeper
printf 'hello\n' > src/a.txt
head -c 3000001 /dev/urandom > src/sub/big.bin
: > src/sub/empty
printf x > src/sub/deeper/x

expect_ok "cp -r local tree" "$P" cp -r src dst
expect_ok "copied tree is identical" diff -r src dst
expect_out "cat" "hello" "$P" cat dst/a.txt
expect_out "ls" "$(printf 'a.txt\nsub/')" "$P" ls dst
out=$("$P" ls -l dst/sub); case "$out" in *3000001*big.bin*) pass "ls -l shows sizes" ;; *) fail "ls -l shows sizes" "$out" ;; esac
out=$("$P" stat dst/sub/big.bin); case "$out" in *"Size: 3000001"*) pass "stat size" ;; *) fail "stat size" "$out" ;; esac
expect_ok "cp into existing dir" "$P" cp src/a.txt dst/sub
expect_ok "copied into dir" cmp src/a.txt dst/sub/a.txt
expect_ok "cp several into dir" "$P" cp src/a.txt src/sub/empty dst/sub/deeper
expect_ok "several arrived" test -f dst/sub/deeper/empty
expect_ok "mkdir -p" "$P" mkdir -p m/n/o
expect_ok "mkdir -p existing" "$P" mkdir -p m/n/o
expect_ok "mkdir" "$P" mkdir m/p
expect_ok "mv rename" "$P" mv dst/a.txt dst/b.txt
expect_ok "mv result" test -f dst/b.txt -a ! -e dst/a.txt
expect_ok "mv into dir" "$P" mv dst/b.txt m
expect_ok "mv into dir result" test -f m/b.txt
out=$("$P" df . | tail -n 1); case "$out" in *%) pass "df" ;; *) fail "df" "$out" ;; esac
expect_ok "rm file" "$P" rm m/b.txt
expect_ok "rm -r" "$P" rm -r dst
expect_ok "rm -r result" test ! -e dst

# The option parser: "--" ends options, options may follow arguments, -h anywhere.
printf 'dash\n' > ./-weird
expect_out "-- ends options" "dash" "$P" cat -- -weird
expect_out "option after arguments" "-0644            5 $(date -r ./-weird '+%Y-%m-%d %H:%M') ./-weird" "$P" ls ./-weird -l
out=$("$P" rm nothing-here -h); case "$out" in "usage: petrel rm"*) pass "-h after arguments" ;; *) fail "-h after arguments" "$out" ;; esac
expect_fail "flag with a value" "takes no value" "$P" ls --long=yes .

# Error paths: one line, non-zero exit, nothing changed.
expect_fail "cp missing source" "petrel cp: cannot access 'nope': No such file" "$P" cp nope x
expect_ok "nothing created" test ! -e x
expect_fail "cp dir without -r" "is a directory (use -r" "$P" cp src y
expect_fail "cp unknown option" "unknown option '--bogus'" "$P" cp --bogus src y
expect_fail "cp unknown short option" "unknown option '-z'" "$P" cp -z src y
expect_fail "cp one argument" "missing argument" "$P" cp src
expect_fail "cp several into a file" "is not a directory" "$P" cp src/a.txt src/a.txt m/n/o/nofile
expect_fail "cp dir into itself" "into itself" "$P" cp -r src src/sub
expect_fail "cp onto itself" "same file" "$P" cp src/a.txt src/a.txt
expect_fail "cat missing" "petrel cat: cannot open 'nope'" "$P" cat nope
expect_fail "cat directory" "Is a directory" "$P" cat src
expect_fail "ls missing" "cannot access" "$P" ls nope
expect_fail "stat missing" "cannot stat" "$P" stat nope
expect_fail "mkdir existing" "File exists" "$P" mkdir m
expect_fail "mkdir missing parent" "No such file" "$P" mkdir q/r
expect_fail "rm dir without -r" "is a directory (use -r)" "$P" rm src
expect_ok "dir kept" test -f src/a.txt
expect_fail "rm missing" "cannot remove 'nope'" "$P" rm nope
expect_fail "mv missing" "cannot move" "$P" mv nope x
expect_fail "missing image" "cannot open image 'no.img'" "$P" ls no.img:/
expect_fail "bad cluster address" "bad location" "$P" ls petrel://host-without-port/x
expect_fail "mount missing store" "cannot open" "$P" mount nope.img "$t/m"
expect_fail "mount too few args" "missing argument" "$P" mount src
expect_fail "cluster without subcommand" "missing subcommand" "$P" cluster
expect_fail "cluster bad subcommand" "unknown subcommand 'frob'" "$P" cluster frob
expect_fail "cluster start without --dir" "no data directory given" "$P" cluster start
expect_fail "cluster status bad address" "is not a cluster address" "$P" cluster status "$t"
expect_fail "cluster status unreachable" "cannot reach cluster petrel://127.0.0.1:1: connection refused" "$P" cluster status petrel://127.0.0.1:1
finish
