#!/usr/bin/env python3
"""Lists, for each Swift file of the library, the types it uses from a higher layer.

The layers (bottom first, from notes and DESIGN.md):
    Core < Platform < Wire < Journal, Scheduler, Slurm < Launchers < Workers < Pool
A file may use the types of its own folder and of the folders below it, never above.
Journal, Scheduler and Slurm are one level: a use across them is listed as "sideways"
(a note, not a failure).

How it works (a scanner, not a compiler, so read its output, do not trust it blindly):
1. Every top-level type declared in Sources/Multiprocessing/<Folder>/*.swift
   (struct, class, enum, protocol, actor, typealias at the start of a line) belongs to
   <Folder>. Nested types are reached through their parent's name, which is what counts.
2. Each file is stripped of comments and of the text of string literals (the code inside
   a string's interpolation, \\( ... ), is kept: it is code).
3. Every capitalised identifier that names a declared type, is not preceded by a dot
   (a member or nested name, qualified by what comes before it) and is not declared in the
   file itself (its own types, and the generic parameters it declares: <T: ...>, <A, B>)
   counts as a use of that type's folder.
Known blind spots: a nested type used unqualified inside an extension of its parent in
another folder, and a name that is both a declared type and something else (an enum case
written with a capital letter) can be missed or misread.

Usage: scripts/check-layers.py [root]   (root: the package, default: this script's parent)
Exit status: 1 when some file uses a type of a higher folder, else 0.
"""
import os
import re
import sys

ORDER = {
    "Core": 0, "Platform": 1, "Wire": 2, "Journal": 3, "Scheduler": 3, "Slurm": 3,
    "Launchers": 4, "Workers": 5, "Pool": 6,
}

DECL = re.compile(
    r"^(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:public|internal|package|fileprivate|private|final|indirect|nonisolated)\s+)*"
    r"(?:struct|class|enum|protocol|actor|typealias)\s+([A-Z]\w*)", re.M)
IDENT = re.compile(r"[A-Za-z_]\w*")


def strip(source):
    """Removes comments and string text, keeping the code of interpolations."""
    out = []
    i, n = 0, len(source)
    # Stack of contexts: ("code", paren depth) inside interpolations, ("str", delimiter).
    stack = [("code", 0)]
    while i < n:
        kind, state = stack[-1]
        c = source[i]
        if kind == "code":
            if source.startswith("//", i):
                j = source.find("\n", i)
                i = n if j < 0 else j
                continue
            if source.startswith("/*", i):
                depth, i = 1, i + 2
                while i < n and depth:
                    if source.startswith("/*", i):
                        depth, i = depth + 1, i + 2
                    elif source.startswith("*/", i):
                        depth, i = depth - 1, i + 2
                    else:
                        i += 1
                continue
            m = re.match(r'(#*)("""|")', source[i:])
            if m:
                stack.append(("str", m.group(2) + m.group(1)))
                out.append(" ")
                i += len(m.group(0))
                continue
            if c == "(" and len(stack) > 1:
                stack[-1] = ("code", state + 1)
            elif c == ")" and len(stack) > 1:
                if state == 0:
                    stack.pop()
                    out.append(" ")
                    i += 1
                    continue
                stack[-1] = ("code", state - 1)
            out.append(c)
            i += 1
        else:
            delimiter = state
            hashes = len(delimiter) - len(delimiter.rstrip("#"))
            if source.startswith(delimiter, i):
                stack.pop()
                i += len(delimiter)
                out.append(" ")
                continue
            escape = "\\" + "#" * hashes
            if source.startswith(escape + "(", i):
                stack.append(("code", 0))
                i += len(escape) + 1
                out.append(" ")
                continue
            if source.startswith(escape, i):
                i += len(escape) + 1
                continue
            out.append("\n" if c == "\n" else " ")
            i += 1
    return "".join(out)


def generic_names(code):
    """Names declared as generic parameters or associated types in this file."""
    names = set()
    for m in re.finditer(r"(?:func\s+[^\s(<]+|(?:struct|class|enum|actor|typealias|init|subscript)\s*\w*)\s*<", code):
        depth, j = 1, m.end()
        start = j
        while j < len(code) and depth:
            depth += {"<": 1, ">": -1}.get(code[j], 0)
            j += 1
        inner = code[start:j - 1]
        # Parameters are the names at depth 0 before a ':' or ',' or the end.
        level, token = 0, ""
        for part in re.split(r"([<>,:\[\]()])", inner):
            if part in "<[(":
                level += 1
            elif part in ">])":
                level -= 1
            elif part in (",", ":"):
                pass
            elif level == 0:
                word = part.strip()
                if re.fullmatch(r"[A-Z]\w*", word):
                    token = word
                    names.add(token)
    names.update(re.findall(r"associatedtype\s+([A-Z]\w*)", code))
    return names


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base = os.path.join(root, "Sources", "Multiprocessing")
    files = {}
    owner = {}
    for folder in sorted(ORDER):
        path = os.path.join(base, folder)
        if not os.path.isdir(path):
            continue
        for name in sorted(os.listdir(path)):
            if name.endswith(".swift"):
                source = open(os.path.join(path, name), encoding="utf-8").read()
                code = strip(source)
                files[f"{folder}/{name}"] = (folder, code)
                for declared in DECL.findall(code):
                    owner.setdefault(declared, folder)
    failures = 0
    for relative, (folder, code) in sorted(files.items()):
        local = set(DECL.findall(code)) | generic_names(code)
        up, sideways = {}, {}
        for m in IDENT.finditer(code):
            word = m.group(0)
            if word not in owner or word in local:
                continue
            k = m.start() - 1
            while k >= 0 and code[k] in " \t":
                k -= 1
            if k >= 0 and code[k] == ".":
                continue
            home = owner[word]
            if ORDER[home] > ORDER[folder]:
                up.setdefault(word, home)
            elif ORDER[home] == ORDER[folder] and home != folder:
                sideways.setdefault(word, home)
        if up:
            failures += 1
            uses = ", ".join(f"{word} ({home})" for word, home in sorted(up.items()))
            print(f"{relative}: uses a higher layer: {uses}")
        if sideways:
            uses = ", ".join(f"{word} ({home})" for word, home in sorted(sideways.items()))
            print(f"{relative}: note, sideways: {uses}")
    print(f"{failures} file(s) use a type of a higher layer")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
