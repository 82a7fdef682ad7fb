#!/usr/bin/env python3
"""Footprint figures of a firmware link of the flash engine (make size, mk/size.sh).

From one build directory holding the objects with their GCC -fstack-usage (.su) and
-fcallgraph-info=su (.ci) files, the linker map and the ELF of the linked program, prints:

  text      bytes of .text/.rodata/.data input sections from the engine's objects kept in the
            image (after --gc-sections), per object group, and the C library the image holds;
  printf    whether any printf-family member of the C library was linked;
  stack     the worst stack depth from the root function over the call graph: each function's
            frame (.su) plus the deepest callee. An indirect call (a block-device callback,
            a walk's visitor) costs the deepest of the functions whose address is taken in
            any object (found from R_ARM_ABS32 / R_X86_64_* data relocations against function
            symbols), which over-approximates; a cycle that passes through such an
            over-approximated edge is ignored and named, a cycle of direct calls is recursion
            and fails; a dynamic frame (alloca, VLA) fails too;
  frames    the largest frames among the engine's functions.

usage: firmware_size.py --dir D --map M --root main --readelf TOOL --engine a.o,b.o,...
           [--text-limit N] [--stack-limit N] [--frame-limit N] [--top N] [--guarded F,G]
Only functions kept in the image count (the map's .text.NAME sections: -ffunction-sections).
A function named by --guarded returns at once when re-entered (a flag guards it, as
pt_fs_repair's fs->repairing does): a cycle back into it costs its own frame; any other
cycle of direct calls is recursion.
Prints "size NAME VALUE<=LIMIT ok|over" lines (text-full, stack-worst, frame-max) and
indented detail lines; exits 1 when a figure is over, 2 on bad input (one clear message).
"""
import argparse
import os
import re
import subprocess
import sys


def fail(msg):
    print("firmware_size: " + msg, file=sys.stderr)
    sys.exit(2)


def parse_ci(path):
    """Nodes (title -> (name, frame or None)) and edges (src, dst) of one .ci file."""
    nodes, edges, unit = {}, [], None
    node_re = re.compile(r'^node: \{ title: "([^"]*)" label: "([^"]*)"')
    edge_re = re.compile(r'^edge: \{ sourcename: "([^"]*)" targetname: "([^"]*)"')
    with open(path) as f:
        for line in f:
            m = re.match(r'^graph: \{ title: "([^"]*)"', line)
            if m:
                unit = m.group(1)
                continue
            m = node_re.match(line)
            if m:
                label = m.group(2).split("\\n")
                frame = None
                qual = None
                for part in label[1:]:
                    fm = re.match(r"^(\d+) bytes \(([^)]*)\)$", part)
                    if fm:
                        frame, qual = int(fm.group(1)), fm.group(2)
                nodes[m.group(1)] = (label[0], frame, qual)
                continue
            m = edge_re.match(line)
            if m:
                edges.append((m.group(1), m.group(2)))
    if unit is None:
        fail("%s: not a -fcallgraph-info file" % path)
    return unit, nodes, edges


def address_taken(readelf, obj):
    """Function symbols of obj referenced by a data relocation (their address is taken)."""
    out = subprocess.run([readelf, "-rsW", obj], capture_output=True, text=True)
    if out.returncode != 0:
        fail("%s -rsW %s: %s" % (readelf, obj, out.stderr.strip()))
    funcs, taken, section = set(), set(), ""
    for line in out.stdout.splitlines():
        f = line.split()
        if len(f) >= 8 and f[3] == "FUNC":
            funcs.add(f[7])
    for line in out.stdout.splitlines():
        m = re.match(r"^Relocation section '\.rela?(\S*)'", line)
        if m:
            section = m.group(1)
            continue
        f = line.split()
        if len(f) < 5 or not re.match(r"^[0-9a-f]+$", f[0]):
            continue
        rtype, sym = f[2], f[4]
        if rtype.endswith(("_CALL", "_JUMP24", "_JUMP11", "_JUMP8", "PLT32", "_PC24")):
            continue
        if section.startswith((".debug", ".ARM.ex", ".eh_frame")):
            continue
        if sym.startswith(".text.") and (len(f) < 7 or f[-1] == "0"):
            # a static function addressed through its section's symbol (x86-64 does this),
            # at offset 0: not a jump table's label inside a function
            name = sym[len(".text."):]
            for prefix in ("startup.", "unlikely.", "hot."):
                if name.startswith(prefix):
                    name = name[len(prefix):]
            if name in funcs:
                taken.add(name)
        elif sym in funcs:
            taken.add(sym)
    return taken


def build_graph(d, readelf, kept):
    """Call graph of the functions kept in the image (kept: (object, section name) pairs from
    the map), over every .ci of d, static names qualified by their unit."""
    frames, quals, names, edges, units = {}, {}, {}, {}, {}
    local_names = {}
    indirect_targets = set()
    cis = sorted(x for x in os.listdir(d) if x.endswith(".ci"))
    if not cis:
        fail("%s: no .ci files (build with -fcallgraph-info=su)" % d)
    parsed = []
    for ci in cis:
        unit, nodes, es = parse_ci(os.path.join(d, ci))
        parsed.append((ci, unit, nodes, es))
        for title, (name, frame, qual) in nodes.items():
            asm = title[len(unit) + 1:] if title.startswith(unit + ":") else title
            if frame is not None and (ci[:-3] + ".o", asm) in kept:
                frames[title] = frame
                quals[title] = qual
                names[title] = name
                units[title] = ci[:-3]
                if title.startswith(unit + ":"):
                    local_names[(ci[:-3], name)] = title
    for ci, unit, nodes, es in parsed:
        for s, t in es:
            edges.setdefault(s, [])
            if t not in edges[s]:
                edges[s].append(t)
        obj = os.path.join(d, ci[:-3] + ".o")
        if os.path.exists(obj):
            for sym in address_taken(readelf, obj):
                key = local_names.get((ci[:-3], sym), sym)
                if key in frames:
                    indirect_targets.add(key)
    return frames, quals, names, units, edges, indirect_targets


def worst_path(root, frames, quals, names, edges, targets, guarded, problems, notes):
    """Deepest (bytes, path) from root; memoised DFS without recursion in Python's stack.

    A state is (function, inside): inside is 1 once a guarded function is on the stack. There a
    call to a guarded function returns at once (its own frame only), so a cycle that passes
    through a guarded function is walked exactly once more, as the code runs it. Any other
    cycle of states is recursion, unless it passes through an over-approximated indirect call.
    """
    memo = {}
    onstack = set()

    def callees(state):
        n, inside = state
        for t in edges.get(n, []):
            if t == "__indirect_call":
                for x in sorted(targets):
                    yield x, True
            else:
                yield t, False

    def enter(t, inside):
        return (t, 1 if inside or names[t] in guarded else 0)

    root_state = (root, 1 if names[root] in guarded else 0)
    # explicit stack of (state, callee iterator, reached through an indirect call)
    stack = [(root_state, callees(root_state), False)]
    onstack.add(root_state)
    best = {root_state: (0, [])}
    while stack:
        state, it, via = stack[-1]
        node, inside = state
        advanced = False
        for t, ind in it:
            if t not in frames:
                continue  # a library or compiler routine without a graph (memcpy, __aeabi_*)
            if inside and names[t] in guarded:
                notes.add("%s re-entered from %s returns at once (guarded by a flag): "
                          "counted as its own frame" % (names[t], names[node]))
                cand = (frames[t], [(t, inside)])
            else:
                ts = enter(t, inside)
                if ts in memo:
                    cand = memo[ts]
                elif ts in onstack:
                    idx = [x[0] for x in stack].index(ts)
                    if ind or any(x[2] for x in stack[idx + 1:]):
                        notes.add("cycle through an over-approximated indirect call ignored: "
                                  "%s -> %s" % (names[node], names[t]))
                    else:
                        problems.append("recursion: %s calls %s" % (names[node], names[t]))
                    continue
                else:
                    stack.append((ts, callees(ts), ind))
                    onstack.add(ts)
                    best[ts] = (0, [])
                    advanced = True
                    break
            if cand[0] > best[state][0]:
                best[state] = cand
        if advanced:
            continue
        stack.pop()
        onstack.discard(state)
        q = quals.get(node, "static")
        if q != "static":
            problems.append("%s has a %s frame" % (names[node], q))
        depth, path = best[state]
        memo[state] = (frames.get(node, 0) + depth, [state] + path)
        if stack:
            parent = stack[-1][0]
            if memo[state][0] > best[parent][0]:
                best[parent] = memo[state]
    by_function = {}
    for (n, inside), (d, path) in memo.items():
        if not inside or n not in by_function:
            by_function[n] = (d, [x[0] for x in path])
    return (memo[root_state][0], [x[0] for x in memo[root_state][1]]), by_function


def map_sizes(path, engine):
    """Bytes of kept .text/.rodata/.data input sections per object, from a GNU ld map."""
    sizes, libc, members, kept = {}, {}, set(), set()
    in_map = False
    pending = None
    sec_re = re.compile(r"^ (\.(?:text|rodata|data)\S*)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S.*)$")
    cont_re = re.compile(r"^\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S.*)$")
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("Linker script and memory map"):
                in_map = True
                continue
            if not in_map:
                continue
            size = obj = None
            section = None
            m = sec_re.match(line)
            if m:
                section, size, obj = m.group(1), int(m.group(2), 16), m.group(3)
            elif pending:
                m = cont_re.match(line)
                if m:
                    section, size, obj = pending.strip(), int(m.group(1), 16), m.group(2)
            pending = None
            if size is None:
                if re.match(r"^ \.(?:text|rodata|data)\S*$", line):
                    pending = line
                continue
            base = os.path.basename(obj)
            if section.startswith(".text.") and size:
                name = section[len(".text."):]
                for prefix in ("startup.", "unlikely.", "hot."):  # main is in .text.startup
                    if name.startswith(prefix):
                        name = name[len(prefix):]
                kept.add((base, name))
            if base in engine:
                sizes[base] = sizes.get(base, 0) + size
            elif "(" in obj:
                members.add(obj)
                lib = obj.split("(")[0]
                libc[os.path.basename(lib)] = libc.get(os.path.basename(lib), 0) + size
    if not in_map:
        fail("%s: not a GNU ld map file" % path)
    return sizes, libc, members, kept


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--map", required=True)
    ap.add_argument("--root", default="main")
    ap.add_argument("--readelf", default="readelf")
    ap.add_argument("--engine", required=True, help="comma-separated object names")
    ap.add_argument("--text-limit", type=int, default=0)
    ap.add_argument("--stack-limit", type=int, default=0)
    ap.add_argument("--frame-limit", type=int, default=0)
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--entry-prefix", default="petrel_",
                    help="list the worst stack from each function of this prefix")
    ap.add_argument("--guarded", default="",
                    help="functions whose re-entry returns at once (a flag guards them)")
    a = ap.parse_args()
    if not os.path.isdir(a.dir):
        fail("%s: no such directory" % a.dir)
    if not os.path.isfile(a.map):
        fail("%s: no such map file" % a.map)
    engine = set(a.engine.split(","))
    over = 0

    def figure(name, value, limit):
        nonlocal over
        if limit:
            ok = value <= limit
            over += 0 if ok else 1
            print("size %s %d<=%d %s" % (name, value, limit, "ok" if ok else "over"))
        else:
            print("size %s %d" % (name, value))

    sizes, libc, members, kept = map_sizes(a.map, engine)
    figure("text-full", sum(sizes.values()), a.text_limit)
    groups = {}
    for obj, n in sizes.items():
        g = "crc32c" if obj.startswith("crc32c") else obj[:-2]
        groups[g] = groups.get(g, 0) + n
    print("  text by object: " + ", ".join("%s %d" % (g, n) for g, n in
                                           sorted(groups.items(), key=lambda x: -x[1])))
    print("  C library kept beside it: " + (", ".join("%s %d" % kv for kv in sorted(libc.items()))
                                             or "none"))
    printf = sorted(set(os.path.basename(m) for m in members
                        if re.search(r"printf|vfprint|_dtoa|svfi", m)))
    print("  printf family linked: " + (" ".join(printf) if printf else "none"))

    frames, quals, names, units, edges, targets = build_graph(a.dir, a.readelf, kept)
    if a.root not in frames:
        fail("root function %s not in the call graph" % a.root)
    problems, notes = [], set()
    (depth, path), memo = worst_path(a.root, frames, quals, names, edges, targets,
                                     set(a.guarded.split(",")), problems, notes)
    figure("stack-worst", depth, a.stack_limit)
    print("  worst path: " + " > ".join("%s %d" % (names[n], frames[n]) for n in path))
    entries = sorted((t for t in memo if names[t].startswith(a.entry_prefix)),
                     key=lambda t: -memo[t][0])
    if entries:
        print("  by entry point: " + ", ".join("%s %d" % (names[t], memo[t][0]) for t in entries))
    print("  indirect calls cost the deepest of: " + " ".join(sorted(names[t] for t in targets)))
    for n in sorted(notes):
        print("  note: " + n)
    for p in problems:
        print("  problem: " + p)
    eng = [t for t in frames if units[t] + ".o" in engine]
    top = sorted(eng, key=lambda t: -frames[t])[: a.top]
    figure("frame-max", frames[top[0]] if top else 0, a.frame_limit)
    print("  largest frames: " + ", ".join("%s %d" % (names[t], frames[t]) for t in top))
    if problems:
        return 1
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
