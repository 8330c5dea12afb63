// SPDX-License-Identifier: Apache-2.0
// runtime/src/gdb_autoload.cpp — puts the gdb extension (tools/gdb/stackless.py: `info tasklets`,
// `tasklet bt ID`, `tasklet frame ID`; docs/gdb.md) into every program linked with the runtime,
// so gdb loads it by itself. No code, no runtime behaviour: one section that only gdb reads.
//
// How gdb finds it. When gdb reads an object file (the executable, or libstackless_runtime.so in
// a shared build) it runs the entries of its `.debug_gdb_scripts` section (gdb manual, "The
// .debug_gdb_scripts section"). Ours is one entry of kind 4, SECTION_SCRIPT_ID_PYTHON_TEXT: the
// whole script, `.incbin`ed at compile time, after a first line that names it. gdb runs it only
// if the object file is under the auto-load safe-path, which by default covers system
// directories only; a program elsewhere needs one of
//     add-auto-load-safe-path /path/to/the/program     (in ~/.config/gdb/gdbinit)
//     gdb -iex "set auto-load safe-path /" ./program
// Without that gdb prints a warning naming the file and the command to allow it, and
// `info auto-load python-scripts` lists the script as not loaded. The same script, installed as
// <prefix>/share/gdb/stackless/stackless.py, can always be loaded by hand with `source`.
//
// Rejected: an entry of kind 1 (a script *file name*): gdb looks the name up in the current
// directory and the source path, so it finds nothing for a program run from elsewhere, and a
// built library cannot name both the source tree (in-tree builds) and the install prefix.
// Rejected: <program>-gdb.py beside each binary: one per executable, and a static link has no
// library file to attach it to.
//
// A static library adds an object to a link only when something refers to one of its symbols:
// lifecycle.cpp refers to stackless_gdb_autoload (a [[gnu::used]] pointer), so every program that
// creates a scheduler carries the section. `strip --strip-debug` removes it with the rest of the
// debug info, as it should (the script needs the debug info anyway).
//
// STACKLESS_GDB_SCRIPT (runtime/CMakeLists.txt) is the script's absolute path: it must not contain
// a double quote or a backslash (it is spliced into an assembler string). The script must not
// contain a NUL byte (the entry is a C string).
#ifndef STACKLESS_GDB_SCRIPT
#error "STACKLESS_GDB_SCRIPT (the path of tools/gdb/stackless.py) must be defined"
#endif

#if defined(__ELF__)
asm(".pushsection \".debug_gdb_scripts\", \"MS\", @progbits, 1\n"
    ".byte 4\n"
    ".ascii \"stackless-gdb-tasklets.py\\n\"\n"
    ".incbin \"" STACKLESS_GDB_SCRIPT
    "\"\n"
    ".byte 0\n"
    ".popsection\n");
#endif

/// stackless_gdb_autoload is the symbol lifecycle.cpp refers to, so that a static link keeps this
/// object (and its section). Its value means nothing.
extern "C" {
extern const char stackless_gdb_autoload;
const char stackless_gdb_autoload = 0;
}
