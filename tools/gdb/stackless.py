# SPDX-License-Identifier: Apache-2.0
# tools/gdb/stackless.py -- gdb knows tasklets: `info tasklets`, `tasklet bt ID`, `tasklet frame ID`,
# `tasklet restore` (docs/gdb.md has a transcript).
#
# Loading: a program linked with stackless::runtime carries this file in its .debug_gdb_scripts
# section (runtime/src/gdb_autoload.cpp), which gdb runs when auto-load allows the binary
# (`add-auto-load-safe-path <dir>` in ~/.config/gdb/gdbinit, or `-iex "set auto-load safe-path /"`).
# Or by hand: `source <prefix>/share/stackless/gdb/stackless.py`. Loading it twice is harmless
# (the commands are registered again, replacing the first ones).
#
# Glossary (the runtime's vocabulary, runtime/src/scheduler_impl.hpp):
#   scheduler_impl   one scheduler; every live one is in the function-local static vector of
#                    stackless::detail::live_schedulers() (lifecycle.cpp).
#   registry shard   scheduler_impl::shards[0 .. nworkers]: `head` starts a list of that shard's
#                    live tasklets through tcb::reg_next.
#   tcb              stackless::detail::tcb, the runtime's part of a control block: state, name,
#                    wait_what/wait_target, parked_since_ns, spawned_at, ctx (the saved context).
#   fctx             tcb::ctx.fctx: the stack pointer Boost.Context's jump_fcontext left behind when
#                    the tasklet switched away. The callee-saved registers and the return address
#                    are stored just above it (the layout is read from jump_fcontext's own code,
#                    see _parse_jump_fcontext()).
#
# Unwinding a tasklet that is not running: gdb unwinds from registers, so the selected thread's
# frame-0 registers (rip, rsp, rbp, rbx, r12-r15) are set to the tasklet's saved ones, gdb's
# `bt` runs, and the thread's own registers are written back exactly (try/finally). Nothing in
# the tasklet runs. `tasklet frame ID` leaves the registers switched until `tasklet restore` (or
# `tasklet frame` with no ID); hook-continue, hook-next, ... (see _RESUMERS) end the view before
# the program resumes. A core file has no registers to write: there `tasklet bt` and
# `tasklet frame` refuse; `info tasklets` works.
# A running tasklet is the worker thread's own stack: `tasklet bt` shows that thread's `bt`.
#
# Rejected: a Python unwinder (gdb.unwinder) would work on core files too, but it cannot replace
# frame 0 (always the thread's real registers), so every tasklet backtrace would start with a
# frame that is not the tasklet's, and `frame N` numbers would be off by one.
# Rejected: hard-coded structure offsets. Everything is read through the debug info by name.

import re
import time

import gdb
from gdb.FrameDecorator import FrameDecorator

_LIVE = "'stackless::detail::live_schedulers()::v'"
_STATES = {0: "NEW", 1: "RUNNABLE", 2: "RUNNING", 3: "PARKED", 4: "PAUSED",
           5: "PAUSED_QUEUED", 6: "DEAD"}
# tcb::parked_since_ns's clock; Python's time module does not name it (Linux: 6).
_CLOCK_MONOTONIC_COARSE = getattr(time, "CLOCK_MONOTONIC_COARSE", 6)
_SWAPPED_REGS = ("rip", "rsp", "rbp", "rbx", "r12", "r13", "r14", "r15")


class StacklessError(gdb.GdbError):
    pass


# ---- reading libstdc++ / libc++ values without the pretty printers ----------------------------

def _member(v, name, depth=0):
    """v.name, looked up through base classes too; None when there is none."""
    t = v.type.strip_typedefs()
    if t.code not in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION) or depth > 6:
        return None
    bases = []
    for f in t.fields():
        if f.name == name and not f.is_base_class:
            return v[f]
        if f.is_base_class:
            bases.append(f)
    for f in bases:
        m = _member(v[f], name, depth + 1)
        if m is not None:
            return m
    return None


def _atomic(v):
    """The value inside a std::atomic<T> (libstdc++: _M_i, _M_base._M_i, _M_b._M_p; libc++:
    __a_.__a_value), or v itself when it is not an atomic."""
    for _ in range(4):
        for n in ("_M_i", "_M_base", "_M_b", "_M_p", "__a_", "__a_value"):
            m = _member(v, n)
            if m is not None:
                v = m
                break
        else:
            return v
    return v


def _first_pointer(v, depth=0):
    """The first pointer member found depth-first (the stored pointer of a unique_ptr)."""
    t = v.type.strip_typedefs()
    if t.code == gdb.TYPE_CODE_PTR:
        return v
    if depth > 8 or t.code not in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
        return None
    for f in t.fields():
        if not hasattr(f, "bitpos"):  # a static member
            continue
        try:
            p = _first_pointer(v[f], depth + 1)
        except gdb.error:
            continue
        if p is not None:
            return p
    return None


def _vector(v):
    """The elements of a std::vector (libstdc++ or libc++) as a list of gdb.Value."""
    impl = _member(v, "_M_impl")
    if impl is not None:
        begin, end = impl["_M_start"], impl["_M_finish"]
    elif _member(v, "__begin_") is not None:
        begin, end = _member(v, "__begin_"), _member(v, "__end_")
    else:
        raise StacklessError("stackless: cannot read a std::vector of this standard library")
    n = int(end - begin)
    if n < 0 or n > 100000:
        raise StacklessError("stackless: a std::vector of the runtime looks corrupt (%d)" % n)
    return [begin[i] for i in range(n)]


def _string(v):
    """A std::string's text."""
    try:
        if _member(v, "_M_dataplus") is not None:
            n = int(_member(v, "_M_string_length"))
            return _member(v, "_M_dataplus")["_M_p"].string(length=min(n, 4096)) if n else ""
        vis = gdb.default_visualizer(v)
        if vis is not None:
            s = vis.to_string()
            return s if isinstance(s, str) else s.string()
        return v.format_string().strip('"')
    except (gdb.error, gdb.MemoryError, UnicodeDecodeError):
        return "<unreadable>"


def _cstring(p, limit=256):
    if int(p) == 0:
        return ""
    try:
        return p.string(length=-1)[:limit]
    except (gdb.error, gdb.MemoryError, UnicodeDecodeError):
        try:
            return p.lazy_string(length=limit).value().string()
        except Exception:  # noqa: BLE001 -- a best-effort label
            return "<unreadable>"


# ---- the runtime's objects ------------------------------------------------------------------

def _live_vector():
    """live_schedulers()'s static vector, found from the function's block (an expression naming
    it only resolves while a frame of the runtime's object file is selected)."""
    try:
        fn = gdb.lookup_global_symbol("stackless::detail::live_schedulers")
        if fn is not None:
            block = gdb.block_for_pc(int(fn.value().address))
            while block is not None and block.function is None:
                block = block.superblock
            if block is not None:
                for sym in block:
                    if sym.name == "v" and sym.is_variable:
                        return sym.value()
    except (gdb.error, RuntimeError):
        pass
    return gdb.parse_and_eval(_LIVE)


def _schedulers():
    try:
        v = _live_vector()
    except gdb.error:
        raise StacklessError(
            "stackless: no stackless runtime found in this program (no debug info for "
            "stackless::detail::live_schedulers(), or the library is not loaded yet)")
    return [s for s in _vector(v) if int(s) != 0]


def _tasklets(sched):
    """Every tcb* in the registry of one scheduler_impl*."""
    s = sched.dereference()
    shards = _first_pointer(s["shards"])
    n = int(s["nworkers"]) + 1
    out = []
    if shards is None or int(shards) == 0:
        return out
    for i in range(n):
        t = shards[i]["head"]
        seen = 0
        while int(t) != 0:
            out.append(t)
            seen += 1
            if seen > 10_000_000:
                raise StacklessError("stackless: a registry list does not end (corrupt?)")
            t = t["reg_next"]
    return out


def _workers(sched):
    """(index, worker*) of one scheduler_impl*."""
    out = []
    for i, up in enumerate(_vector(sched["workers"])):
        w = _first_pointer(up)
        if w is not None and int(w) != 0:
            out.append((i, w))
    return out


def _all_tasklets():
    """[(scheduler index, scheduler_impl*, tcb*)] over every live scheduler."""
    out = []
    for si, s in enumerate(_schedulers()):
        for t in _tasklets(s):
            out.append((si, s, t))
    return out


def _find(tid):
    found = [(si, s, t) for si, s, t in _all_tasklets() if int(t["id"]) == tid]
    if not found:
        raise StacklessError("stackless: no live tasklet has id %d (`info tasklets` lists them)"
                             % tid)
    return found[0]


def _state(t):
    s = int(_atomic(t["state"]))
    return _STATES.get(s, "?%d" % s)


def _name(t):
    n = _string(t["name"])
    return n if n else "(unnamed)"


def _running_on(sched, t):
    """(worker index, worker*) whose `current` is t, or None."""
    for i, w in _workers(sched):
        try:
            if int(w["current"]) == int(t):
                return i, w
        except gdb.error:
            pass
    return None


def _thread_of_worker(w):
    """The gdb.InferiorThread running worker w (by the tid it publishes), or None."""
    try:
        tid = int(_atomic(w["tid"]))
    except gdb.error:
        return None
    if tid == 0:
        return None
    for th in gdb.selected_inferior().threads():
        if th.ptid[1] == tid:
            return th
    return None


def _spawn_site(t):
    try:
        impl = t["spawned_at"]["_M_impl"]
    except gdb.error:
        return "?"
    if int(impl) == 0:
        return "-"
    f = _cstring(impl["_M_file_name"])
    fn = _cstring(impl["_M_function_name"])
    return "%s:%d %s" % (f.rsplit("/", 1)[-1], int(impl["_M_line"]), _short_function(fn))


def _short_function(fn):
    """A function name as __PRETTY_FUNCTION__ spells it, short for the table: no return type and
    no parameter types ('int main(int, char**)::<lambda()>' -> 'main()::<lambda()>')."""
    depth = 0
    for i, ch in enumerate(fn):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            head = fn[:i].split(" ")[-1]
            level = 0
            for j in range(i, len(fn)):
                if fn[j] == "(":
                    level += 1
                elif fn[j] == ")":
                    level -= 1
                    if level == 0:
                        return head + "()" + fn[j + 1:]
            return head + "()"
    return fn


def _is_live_process():
    inf = gdb.selected_inferior()
    if inf.pid == 0:
        return False
    conn = getattr(inf, "connection", None)
    ctype = getattr(conn, "type", None) if conn is not None else None
    if ctype is not None:
        return ctype != "core"
    try:
        return "core file" not in gdb.execute("info target", to_string=True)
    except gdb.error:
        return True


def _parked_for(t, state):
    if state != "PARKED" or not _is_live_process():
        return "?" if state == "PARKED" else "-"
    try:
        since = int(t["parked_since_ns"])
    except gdb.error:
        return "?"
    if since == 0:
        return "?"
    ns = time.clock_gettime_ns(_CLOCK_MONOTONIC_COARSE) - since
    if ns < 0:
        ns = 0
    if ns >= 10_000_000_000:
        return "%.0fs" % (ns / 1e9)
    if ns >= 1_000_000_000:
        return "%.2fs" % (ns / 1e9)
    return "%.1fms" % (ns / 1e6)


def _waits_on(t, state):
    if state not in ("PARKED", "PAUSED", "PAUSED_QUEUED"):
        return "-"
    what = _cstring(t["wait_what"])
    if not what:
        return "-"
    target = int(t["wait_target"])
    return "%s #%d" % (what, target) if target else what


def _worker_column(sched, t, state):
    if state == "RUNNING":
        r = _running_on(sched, t)
        if r is not None:
            th = _thread_of_worker(r[1])
            return "w%d (thread %d)" % (r[0], th.num) if th is not None else "w%d" % r[0]
    try:
        home = t["home"]
        if int(home) != 0 and (int(t["atomic_depth"]) > 0 or bool(t["hard_pinned"])):
            return "pinned w%d" % int(home["index"])
    except gdb.error:
        pass
    return "-"


# ---- the saved context ----------------------------------------------------------------------

_layout_cache = {}


def _read_u64(addr):
    return int.from_bytes(gdb.selected_inferior().read_memory(addr, 8).tobytes(), "little")


def _pc_known(pc):
    try:
        return gdb.current_progspace().block_for_pc(pc) is not None or \
            gdb.current_progspace().solib_name(pc) is not None
    except (gdb.error, RuntimeError):
        return False


def _parse_jump_fcontext():
    """The save slots of jump_fcontext, read from its code: {reg: offset from fctx}, with 'rip'
    (the return address) and 'size' (the caller's rsp is fctx + size). None if not readable."""
    try:
        addr = int(gdb.parse_and_eval("(unsigned long) &jump_fcontext"))
    except gdb.error:
        return None
    key = addr
    if key in _layout_cache:
        return _layout_cache[key]
    arch = gdb.selected_inferior().architecture()
    flavor = None
    try:
        shown = gdb.execute("show disassembly-flavor", to_string=True)
        flavor = "intel" if "intel" in shown else "att"
        gdb.execute("set disassembly-flavor att", to_string=True)
        insns = arch.disassemble(addr, count=32)
    except gdb.error:
        return None
    finally:
        if flavor == "intel":
            gdb.execute("set disassembly-flavor intel", to_string=True)
    lowered = 0          # how far rsp was lowered so far
    slots = []           # (reg, offset from rsp, rsp lowering at the time)
    for ins in insns:
        a = re.sub(r"\s+", " ", ins["asm"].split("#")[0]).strip()
        m = re.match(r"lea -0x([0-9a-f]+)\(%rsp\),%rsp$", a)
        if m:
            lowered += int(m.group(1), 16)
            continue
        m = re.match(r"sub \$0x([0-9a-f]+),%rsp$", a)
        if m:
            lowered += int(m.group(1), 16)
            continue
        m = re.match(r"mov %(r1[2-5]|rbx|rbp),(?:0x([0-9a-f]+))?\(%rsp\)$", a)
        if m:
            slots.append((m.group(1), int(m.group(2) or "0", 16), lowered))
            continue
        if a == "mov %rsp,%rax":  # the context pointer is final here
            break
    else:
        return None
    regs = {r: off + (lowered - at) for r, off, at in slots}
    if lowered == 0 or set(regs) != {"rbx", "rbp", "r12", "r13", "r14", "r15"}:
        return None
    layout = dict(regs, rip=lowered, size=lowered + 8)
    _layout_cache[key] = layout
    return layout


# Boost 1.74 and later Boost (the fc_guard slot was added before R12), for when jump_fcontext's
# code cannot be read (a stripped static link); the one whose return address lands in known code
# is used.
_KNOWN_LAYOUTS = (
    dict(r12=0x08, r13=0x10, r14=0x18, r15=0x20, rbx=0x28, rbp=0x30, rip=0x38, size=0x40),
    dict(r12=0x10, r13=0x18, r14=0x20, r15=0x28, rbx=0x30, rbp=0x38, rip=0x40, size=0x48),
)


def _saved_registers(t):
    """{reg: value} of a suspended tasklet, as its frame 0 (the return into context_switch)."""
    ctx = t["ctx"]
    fctx = int(ctx["fctx"])
    if fctx == 0:
        raise StacklessError("stackless: tasklet %d has no saved context (no stack yet)"
                             % int(t["id"]))
    try:
        if int(ctx["entry"]) != 0:
            raise StacklessError("stackless: tasklet %d has not started: its stack has no "
                                 "frames yet" % int(t["id"]))
    except gdb.error:
        pass
    parsed = _parse_jump_fcontext()
    for layout in ((parsed,) if parsed else ()) + _KNOWN_LAYOUTS:
        try:
            rip = _read_u64(fctx + layout["rip"])
        except (gdb.error, gdb.MemoryError):
            raise StacklessError("stackless: cannot read tasklet %d's saved context at 0x%x"
                                 % (int(t["id"]), fctx))
        if parsed is layout or _pc_known(rip):
            regs = {r: _read_u64(fctx + off) for r, off in layout.items()
                    if r not in ("rip", "size")}
            regs["rip"] = rip
            regs["rsp"] = fctx + layout["size"]
            return regs
    raise StacklessError("stackless: cannot make sense of tasklet %d's saved context "
                         "(unknown Boost.Context layout)" % int(t["id"]))


# The registers of the thread whose frame 0 shows a tasklet (`tasklet frame`), to restore.
_swapped = None  # (gdb.InferiorThread, {reg: value}, tasklet id)


def _read_thread_regs():
    f = gdb.newest_frame()
    regs = {r: int(f.read_register(r)) for r in _SWAPPED_REGS}
    # A thread stopped in a system call has orig_rax = the call's number, which the kernel reads
    # to restart it; gdb sets it to -1 when it writes the pc through its write_pc hook
    # (amd64_linux_write_pc; `set $rip` does not, here): saved and restored as well, so the
    # interrupted call is restarted exactly as it would have been.
    try:
        regs["orig_rax"] = int(f.read_register("orig_rax"))
    except (ValueError, gdb.error):
        pass
    return regs


def _write_regs(regs):
    gdb.newest_frame().select()
    # rsp and rip last: once they change, gdb's frame 0 is another frame; orig_rax after rip.
    for r in ("rbx", "rbp", "r12", "r13", "r14", "r15", "rsp", "rip", "orig_rax"):
        if r in regs:
            gdb.execute("set $%s = %d" % (r, regs[r]), to_string=True)


def _check_can_swap():
    if not _is_live_process():
        raise StacklessError("stackless: a parked tasklet's frames need a live process (gdb "
                             "cannot change a core file's registers); `info tasklets` still "
                             "works")
    if gdb.selected_thread() is None:
        raise StacklessError("stackless: no thread selected")
    if gdb.selected_thread().is_running():
        raise StacklessError("stackless: the selected thread is running (stop it first)")
    arch = gdb.newest_frame().architecture().name()
    if "x86-64" not in arch:
        raise StacklessError("stackless: `tasklet bt` knows x86-64 only (this is %s)" % arch)


def _restore():
    global _swapped
    if _swapped is None:
        return False
    th, regs, _ = _swapped
    _swapped = None
    _bottom.enabled = False
    current = gdb.selected_thread()
    if th.is_valid():
        th.switch()
        _write_regs(regs)
        if current is not None and current.is_valid() and current != th:
            current.switch()
    return True


def _parse_id(arg, usage):
    a = arg.strip()
    if not a:
        raise StacklessError("usage: %s" % usage)
    try:
        return int(gdb.parse_and_eval(a))
    except gdb.error:
        raise StacklessError("stackless: '%s' is not a tasklet id (usage: %s)" % (a, usage))


def _describe(t):
    return "tasklet %d '%s' (%s)" % (int(t["id"]), _name(t), _state(t))


# ---- the commands ---------------------------------------------------------------------------

class InfoTasklets(gdb.Command):
    """List every tasklet of every live stackless scheduler.

Usage: info tasklets
Columns: id, name, state (NEW RUNNABLE RUNNING PARKED PAUSED PAUSED_QUEUED DEAD), worker (the
worker and gdb thread running it, or the worker a pinned tasklet must run on), what it waits on
(and the id it waits for), how long it has been parked, and where it was spawned."""

    def __init__(self):
        super().__init__("info tasklets", gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        scheds = _schedulers()
        if not scheds:
            print("No live stackless scheduler.")
            return
        rows = []
        for si, s in enumerate(scheds):
            ts = _tasklets(s)
            name = _string(s["opts"]["name"])
            print("Scheduler %d (0x%x, '%s', %d workers): %d tasklet%s" % (
                si, int(s), name, int(s["nworkers"]), len(ts), "" if len(ts) == 1 else "s"))
            rows = []
            for t in ts:
                try:
                    st = _state(t)
                    rows.append(("%d" % int(t["id"]), _name(t), st, _worker_column(s, t, st),
                                 _waits_on(t, st), _parked_for(t, st), _spawn_site(t)))
                except (gdb.error, gdb.MemoryError) as e:
                    rows.append(("?", "<unreadable tcb 0x%x: %s>" % (int(t), e), "", "", "",
                                 "", ""))
            if not rows:
                continue
            head = ("Id", "Name", "State", "Worker", "Waits on", "Parked", "Spawned at")
            widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head) - 1)]
            for r in [head] + sorted(rows, key=lambda r: int(r[0]) if r[0].isdigit() else -1):
                print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])


class TaskletPrefix(gdb.Command):
    """Stackless tasklet commands: tasklet bt ID, tasklet frame [ID], tasklet restore."""

    def __init__(self):
        super().__init__("tasklet", gdb.COMMAND_STACK, prefix=True)

    def invoke(self, arg, from_tty):
        gdb.execute("help tasklet", from_tty)


class TaskletBt(gdb.Command):
    """Show the backtrace of tasklet ID, without resuming it.

Usage: tasklet bt ID [BT-ARGS]
A suspended tasklet is unwound from its saved Boost.Context registers (the selected thread's
registers are switched for the `bt` and restored exactly). A running tasklet's frames are its
worker thread's: that thread's `bt` is shown. BT-ARGS go to `bt` (e.g. `full`, `-3`)."""

    def __init__(self):
        super().__init__("tasklet bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        parts = arg.split(None, 1)
        tid = _parse_id(parts[0] if parts else "", "tasklet bt ID [BT-ARGS]")
        bt_args = parts[1] if len(parts) > 1 else ""
        si, s, t = _find(tid)
        st = _state(t)
        print("%s:" % _describe(t))
        if st == "RUNNING":
            r = _running_on(s, t)
            th = _thread_of_worker(r[1]) if r is not None else None
            if th is None:
                raise StacklessError("stackless: tasklet %d is running, on no thread gdb knows"
                                     % tid)
            print("running on worker %d, gdb thread %d: its frames are that thread's" %
                  (r[0], th.num))
            current = gdb.selected_thread()
            th.switch()
            try:
                _bottom.enabled = True
                gdb.execute("bt %s" % bt_args, from_tty)
            finally:
                _bottom.enabled = _swapped is not None
                current.switch()
            return
        if st == "DEAD":
            raise StacklessError("stackless: tasklet %d has ended" % tid)
        _check_can_swap()
        regs = _saved_registers(t)
        saved = _read_thread_regs()  # during a `tasklet frame` view: the viewed tasklet's
        frame = gdb.selected_frame()
        try:
            _bottom.enabled = True
            _write_regs(regs)
            gdb.execute("bt %s" % bt_args, from_tty)
        finally:
            _bottom.enabled = _swapped is not None
            _write_regs(saved)
            try:
                frame.select()
            except gdb.error:
                pass


class TaskletFrame(gdb.Command):
    """Show tasklet ID's saved context as the selected thread's frame 0.

Usage: tasklet frame [ID]
Then `bt`, `frame N`, `up`, `info locals` work on the tasklet's stack. `tasklet frame` with no ID
(or `tasklet restore`) puts the thread's own registers back. The thread's registers really are
changed while the view is active: continue, next, step, stepi, nexti, finish, until, advance,
jump, signal and detach end the view first (hooks this script defines, unless you defined your
own); anything else that resumes the program (e.g. `print f()`) does not."""

    def __init__(self):
        super().__init__("tasklet frame", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        global _swapped
        if not arg.strip():
            if _restore():
                print("Back to the thread's own registers.")
                gdb.execute("frame", from_tty)
            else:
                print("No tasklet view is active.")
            return
        tid = _parse_id(arg, "tasklet frame [ID]")
        si, s, t = _find(tid)
        st = _state(t)
        if st == "RUNNING":
            r = _running_on(s, t)
            th = _thread_of_worker(r[1]) if r is not None else None
            where = "gdb thread %d" % th.num if th is not None else "its worker's thread"
            raise StacklessError("stackless: tasklet %d is running: select %s (`thread N`)"
                                 % (tid, where))
        if st == "DEAD":
            raise StacklessError("stackless: tasklet %d has ended" % tid)
        _check_can_swap()
        regs = _saved_registers(t)
        if _swapped is not None:
            th0 = _swapped[0]
            if th0.is_valid() and th0 != gdb.selected_thread():
                _restore()
        if _swapped is None:
            _swapped = (gdb.selected_thread(), _read_thread_regs(), tid)
        _define_hooks()
        _write_regs(regs)
        _bottom.enabled = True
        print("Viewing %s on thread %d (`tasklet restore` ends the view; continue, step and the "
              "like end it first)." % (_describe(t), gdb.selected_thread().num))
        gdb.execute("frame", from_tty)


class TaskletRestore(gdb.Command):
    """End a `tasklet frame` view: the thread's own registers come back.

Usage: tasklet restore [-quiet]
`tasklet restore -quiet` says nothing when no view is active: the hooks this script defines for
the commands that resume the program (hook-continue, hook-next, ...) run it."""

    def __init__(self):
        super().__init__("tasklet restore", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        quiet = arg.strip() == "-quiet"
        if _restore():
            print("stackless: the tasklet view ended: the thread has its own registers again"
                  if quiet else "Back to the thread's own registers.")
        elif not quiet:
            print("No tasklet view is active.")


# The commands that resume the program: a hook ends a `tasklet frame` view before each, so the
# thread never runs with a tasklet's registers. A hook the user defined is left alone (the
# resume warning below still fires). `call` and `print f()` are not hooked: an inferior call
# saves and restores the registers itself, and runs below the tasklet's saved frame.
_RESUMERS = ("continue", "next", "step", "stepi", "nexti", "finish", "until", "advance",
             "jump", "signal", "detach")
_HOOK_BODY = "tasklet restore -quiet"


_hooks_defined = False


def _define_hooks():
    """Defines the hooks, at the first `tasklet frame` (not when the script loads: gdb can load it
    in the middle of `run`, at a shared library's load, where running `define` ends the `run`)."""
    global _hooks_defined
    if _hooks_defined:
        return
    _hooks_defined = True
    for cmd in _RESUMERS:
        try:
            have = gdb.execute("show user hook-%s" % cmd, to_string=True)
        except gdb.error:
            have = None
        if have is not None:
            continue  # ours (loaded before) or the user's
        try:
            gdb.execute("define hook-%s\n%s\nend" % (cmd, _HOOK_BODY), to_string=True)
        except gdb.error:
            pass


class _ShortName(FrameDecorator):
    """gdb's own `bt` spelling of a frame's function (a decorator's default is the symbol's
    full signature)."""

    def function(self):
        f = self.inferior_frame()
        return f.name() or f.pc()


class _StackBottom:
    """A frame filter, enabled only while a tasklet is shown: its stack ends at its first frame,
    trampoline() in context.cpp. Below that are make_fcontext()'s exit stub and the unused top of
    the stack, which gdb would unwind into garbage frames: they are not printed (`bt -no-filters`
    prints them)."""

    def __init__(self):
        self.name = "stackless-tasklet-bottom"
        self.priority = 100
        self.enabled = False

    def filter(self, frames):
        for fd in frames:
            name = fd.inferior_frame().name() or ""
            if name == "make_fcontext":
                return
            yield _ShortName(fd)
            if name.startswith("stackless::detail::") and name.endswith("::trampoline"):
                return


_bottom = _StackBottom()


def _on_resume(event):
    # Too late to prevent the resume (gdb has no event before it), but say what happened.
    if _swapped is not None:
        print("stackless: WARNING: the program was resumed during a `tasklet frame` view: "
              "thread %d ran with tasklet %d's registers" % (_swapped[0].num, _swapped[2]))


def _on_exit(event):
    global _swapped
    _swapped = None
    _bottom.enabled = False


gdb.frame_filters[_bottom.name] = _bottom
if not getattr(gdb, "_stackless_tasklets_loaded", False):
    gdb.events.cont.connect(_on_resume)
    gdb.events.exited.connect(_on_exit)
    gdb._stackless_tasklets_loaded = True
InfoTasklets()
TaskletPrefix()
TaskletBt()
TaskletFrame()
TaskletRestore()
