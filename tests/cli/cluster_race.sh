#!/usr/bin/env bash
# Races on one cluster name between real `petrel` processes (issue 10: no acknowledged file
# may be lost to a race). Every round checks what is stored against the racers' exit codes:
#  - N cp -n to one new name (creators only): exactly one exits 0 and its bytes are stored;
#    every other racer exits non-zero with one line and leaves nothing.
#  - N plain cp to one new name, and onto an existing name: a racer that finds the name taken
#    replaces exactly what it found, so several may exit 0 (each replacing the one before);
#    what is stored is the bytes of an exit-0 racer (the last), and at least one exits 0.
#  - cp onto an existing name racing rm of it: a stored file is cp's and cp exited 0; nothing
#    stored means rm exited 0; the old bytes never survive.
#  - mv of another file onto a new name racing cp to it: the stored bytes are those of an
#    exit-0 racer; a failed mv leaves its source untouched.
# PETREL_RACE_ROUNDS (default 8) sets the rounds per race, PETREL_RACE_N (3) the cp racers.
# Prints "race NAME: R rounds, W exit-0 racers, S stored, B bad rounds" per race.
set -u
. "$(dirname "$0")/../lib.sh"
t=$(mktemp -d)
P=$PETREL_BIN
rounds=${PETREL_RACE_ROUNDS:-8}
N=${PETREL_RACE_N:-3}
cpid=
cleanup() {
    if [ -n "$cpid" ]; then kill -TERM "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null; fi
    rm -rf "$t"
}
trap cleanup EXIT

# The address line is printed once the deployment serves; wait for it (no fixed delay: the
# loop ends when the line is there or the supervisor died; 120 s is only a last resort).
"$P" cluster start --dir "$t/var" --shards 1 --block-services 3 >"$t/cluster.out" 2>"$t/cluster.err" &
cpid=$!
A=
deadline=$((SECONDS + 120))
while [ $SECONDS -lt $deadline ]; do
    A=$(head -n 1 "$t/cluster.out")
    [ -n "$A" ] && break
    kill -0 "$cpid" 2>/dev/null || break
    sleep 0.05
done
if [ -z "$A" ]; then
    fail "cluster start" "no address: $(cat "$t/cluster.err")"
    finish; exit 1
fi

# Sources: racer i of round r writes its own bytes; sizes alternate between an inline file
# and one stored in blocks (> 4 KiB).
src() { # $1 = round, $2 = racer: prints the path of that racer's source, made on first use
    local f=$t/src-$1-$2
    if [ ! -f "$f" ]; then
        if [ $(( ($1 + $2) % 2 )) = 0 ]; then
            printf 'round %s racer %s\n' "$1" "$2" > "$f"
        else
            { printf 'round %s racer %s\n' "$1" "$2"; head -c 9000 /dev/zero | tr '\0' "$2"; } > "$f"
        fi
    fi
    echo "$f"
}

# stored NAME: the bytes under NAME into $t/got; returns 1 if nothing is stored.
stored() { "$P" cat "$A/$1" > "$t/got" 2>/dev/null; }
one_line() { [ "$(wc -l < "$1")" = 1 ]; }

# race_round ROUND NAME CP-OPTION...: N cp (with the options) of their own bytes to NAME at once;
# sets won=(exit-0 racers), why (a racer that failed with other than one line), and leaves
# what is stored in $t/got (empty if nothing: then stored_any=0).
race_round() {
    local r=$1 name=$2 i pids=(); shift 2
    for i in $(seq 1 "$N"); do
        "$P" cp "$@" "$(src "$r" "$i")" "$A/$name" > "$t/out-$i" 2>&1 &
        pids+=($!)
    done
    won=(); why=
    for i in $(seq 1 "$N"); do
        if wait "${pids[$((i - 1))]}"; then won+=("$i")
        elif ! one_line "$t/out-$i"; then why="racer $i printed $(wc -l < "$t/out-$i") lines"; fi
    done
    cat "$t"/out-* >> "$t/losers"
    stored_any=1
    stored "$name" || { stored_any=0; : > "$t/got"; }
}
# winner_stored: whether $t/got holds the bytes of one of the exit-0 racers of round $1.
winner_stored() {
    local i
    [ $stored_any = 1 ] || return 1
    for i in "${won[@]}"; do cmp -s "$t/got" "$(src "$1" "$i")" && return 0; done
    return 1
}

# --- N cp -n to one new name: strictly creators -------------------------------------------------
bad=0; winners=0; kept=0; : > "$t/losers"
for r in $(seq 1 "$rounds"); do
    race_round "$r" "excl-$r" -n
    winners=$((winners + ${#won[@]})); kept=$((kept + stored_any))
    if [ ${#won[@]} != 1 ]; then why="${#won[@]} racers exited 0"
    elif [ $stored_any = 0 ]; then why="racer ${won[0]} exited 0 but nothing is stored"
    elif ! winner_stored "$r"; then why="stored bytes are not the winner's"
    fi
    if [ -n "$why" ]; then bad=$((bad + 1)); echo "round $r: $why"; fi
done
echo "race cp-n-new: $rounds rounds, $winners exit-0 racers, $kept stored, $bad bad rounds"
expect_eq "N cp -n to one new name: exactly one winner, its bytes stored, every round" 0 "$bad"
out=$(grep -v '^$' "$t/losers" | sed 's/petrel:[^ ]*//' | sort -u | head -n 3)
case "$out" in
    ""|*"someone else created it meanwhile"*|*"it exists (-n never replaces)"*) pass "a losing cp -n says why in one line" ;;
    *) fail "a losing cp -n says why" "$out" ;;
esac

# --- N cp to one new name: a racer that finds the name taken replaces it (last writer wins) ----
bad=0; winners=0; kept=0; one=0
for r in $(seq 1 "$rounds"); do
    race_round "$r" "new-$r"
    winners=$((winners + ${#won[@]})); kept=$((kept + stored_any))
    [ ${#won[@]} = 1 ] && one=$((one + 1))
    if [ ${#won[@]} = 0 ]; then why="no racer exited 0"
    elif [ $stored_any = 0 ]; then why="${#won[@]} racers exited 0 but nothing is stored"
    elif ! winner_stored "$r"; then why="stored bytes are none of the exit-0 racers'"
    fi
    if [ -n "$why" ]; then bad=$((bad + 1)); echo "round $r: $why"; fi
done
echo "race cp-new: $rounds rounds ($one with one exit-0 racer), $winners exit-0 racers, $kept stored, $bad bad rounds"
expect_eq "N cp to one new name: a winner's bytes stored, every round" 0 "$bad"

# --- N cp onto one existing name ----------------------------------------------------------------
bad=0; winners=0; kept=0
for r in $(seq 1 "$rounds"); do
    printf 'old %s\n' "$r" > "$t/old"
    "$P" cp "$t/old" "$A/old-$r" >/dev/null 2>&1 || { bad=$((bad + 1)); continue; }
    race_round "$r" "old-$r"
    winners=$((winners + ${#won[@]})); kept=$((kept + stored_any))
    if [ ${#won[@]} = 0 ]; then why="no racer exited 0"
    elif ! winner_stored "$r"; then why="stored bytes are none of the exit-0 racers'"
    fi
    if [ -n "$why" ]; then bad=$((bad + 1)); echo "round $r: $why"; fi
done
echo "race cp-replace: $rounds rounds, $winners exit-0 racers, $kept stored, $bad bad rounds"
expect_eq "N cp onto one existing name: a winner's bytes stored, every round" 0 "$bad"

# --- cp onto an existing name racing rm of it ------------------------------------------------
bad=0; cps=0; rms=0
for r in $(seq 1 "$rounds"); do
    printf 'old %s\n' "$r" > "$t/old"
    "$P" cp "$t/old" "$A/rm-$r" >/dev/null 2>&1 || { bad=$((bad + 1)); continue; }
    "$P" cp "$(src "$r" 1)" "$A/rm-$r" > "$t/out-cp" 2>&1 & p1=$!
    "$P" rm "$A/rm-$r" > "$t/out-rm" 2>&1 & p2=$!
    wait $p1; c1=$?; wait $p2; c2=$?
    [ $c1 = 0 ] && cps=$((cps + 1)); [ $c2 = 0 ] && rms=$((rms + 1))
    why=
    # Stored: cp's bytes, and cp exited 0 (it came last, or rm failed on its file). Nothing
    # stored: rm exited 0 (it came last, or cp failed on the removed name). Never the old bytes.
    if stored "rm-$r"; then
        if [ $c1 != 0 ]; then why="cp failed but a file is stored (rm $c2)"
        elif ! cmp -s "$t/got" "$(src "$r" 1)"; then why="stored bytes are not cp's"; fi
    elif [ $c2 != 0 ]; then why="nothing stored but rm failed (cp: $c1)"
    fi
    [ $c1 != 0 ] && ! one_line "$t/out-cp" && why="cp printed $(wc -l < "$t/out-cp") lines"
    [ $c2 != 0 ] && ! one_line "$t/out-rm" && why="rm printed $(wc -l < "$t/out-rm") lines"
    if [ -n "$why" ]; then bad=$((bad + 1)); echo "round $r: $why"; fi
done
echo "race cp-rm: $rounds rounds, cp exit 0 in $cps, rm exit 0 in $rms, $bad bad rounds"
expect_eq "cp racing rm: the outcome matches the exit codes, every round" 0 "$bad"

# --- mv of another file onto a new name racing cp to it --------------------------------------
bad=0; cps=0; mvs=0
for r in $(seq 1 "$rounds"); do
    printf 'moved %s\n' "$r" > "$t/moved"
    "$P" cp "$t/moved" "$A/mvsrc-$r" >/dev/null 2>&1 || { bad=$((bad + 1)); continue; }
    "$P" cp "$(src "$r" 2)" "$A/mv-$r" > "$t/out-cp" 2>&1 & p1=$!
    "$P" mv "$A/mvsrc-$r" "$A/mv-$r" > "$t/out-mv" 2>&1 & p2=$!
    wait $p1; c1=$?; wait $p2; c2=$?
    [ $c1 = 0 ] && cps=$((cps + 1)); [ $c2 = 0 ] && mvs=$((mvs + 1))
    why=
    # The stored bytes are those of an exit-0 racer (the last one); a failed mv left its
    # source as it was, a successful one moved it.
    if ! stored "mv-$r"; then why="nothing stored (cp $c1, mv $c2)"
    elif cmp -s "$t/got" "$t/moved"; then [ $c2 = 0 ] || why="mv's bytes stored but mv failed"
    elif cmp -s "$t/got" "$(src "$r" 2)"; then [ $c1 = 0 ] || why="cp's bytes stored but cp failed"
    else why="stored bytes are neither's"
    fi
    if [ $c2 = 0 ]; then
        stored "mvsrc-$r" && why="mv exited 0 but its source is still there"
    else
        { stored "mvsrc-$r" && cmp -s "$t/got" "$t/moved"; } || why="the failed mv lost its source"
    fi
    [ $c1 != 0 ] && ! one_line "$t/out-cp" && why="cp printed $(wc -l < "$t/out-cp") lines"
    [ $c2 != 0 ] && ! one_line "$t/out-mv" && why="mv printed $(wc -l < "$t/out-mv") lines"
    if [ -n "$why" ]; then bad=$((bad + 1)); echo "round $r: $why"; fi
done
echo "race mv-cp: $rounds rounds, cp exit 0 in $cps, mv exit 0 in $mvs, $bad bad rounds"
expect_eq "mv racing cp: one of them wins, the loser leaves everything, every round" 0 "$bad"

# Nothing of a loser is left in the listing: only the names the rounds made.
extra=$("$P" ls "$A/" | grep -Ev '^(excl|new|old|rm|mv|mvsrc)-[0-9]+$' | head -n 3)
expect_eq "no stray names" "" "$extra"
finish
