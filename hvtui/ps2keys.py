"""Keys as a PS/2 keyboard sends them: key names to scancode-set-2 codes, the characters of
a US layout to the key (and Shift) that types each, and Textual's key names or a
terminal's raw bytes to presses and releases, modifiers included. The result is a list
of host key codes for the C keyboard (hvcore.h HV_KEY_*: the set-2 code, E0 for an
extended key, BREAK for a release); the keyboard sends them in its own scancode set.

No Textual here: the TUI passes its key names in, `hvtui run --console vga` raw bytes.
"""
from __future__ import annotations

import codecs

E0, BREAK, PAUSE = 0x0100, 0x8000, 0x0200      # hvcore.h HV_KEY_E0, HV_KEY_BREAK, HV_KEY_PAUSE

KEYS = {
    "escape": 0x76, "f1": 0x05, "f2": 0x06, "f3": 0x04, "f4": 0x0C, "f5": 0x03, "f6": 0x0B,
    "f7": 0x83, "f8": 0x0A, "f9": 0x01, "f10": 0x09, "f11": 0x78, "f12": 0x07,
    "backspace": 0x66, "tab": 0x0D, "enter": 0x5A, "space": 0x29, "capslock": 0x58,
    "lshift": 0x12, "rshift": 0x59, "lctrl": 0x14, "rctrl": E0 | 0x14, "lalt": 0x11, "ralt": E0 | 0x11,
    "lgui": E0 | 0x1F, "rgui": E0 | 0x27, "menu": E0 | 0x2F,
    "insert": E0 | 0x70, "delete": E0 | 0x71, "home": E0 | 0x6C, "end": E0 | 0x69,
    "pageup": E0 | 0x7D, "pagedown": E0 | 0x7A,
    "up": E0 | 0x75, "down": E0 | 0x72, "left": E0 | 0x6B, "right": E0 | 0x74,
    "numlock": 0x77, "scrolllock": 0x7E, "printscreen": E0 | 0x7C, "pause": PAUSE,
    "kp_divide": E0 | 0x4A, "kp_multiply": 0x7C, "kp_minus": 0x7B, "kp_plus": 0x79, "kp_enter": E0 | 0x5A,
    "kp_period": 0x71, "kp0": 0x70, "kp1": 0x69, "kp2": 0x72, "kp3": 0x7A, "kp4": 0x6B, "kp5": 0x73,
    "kp6": 0x74, "kp7": 0x6C, "kp8": 0x75, "kp9": 0x7D,
}

# A US layout: each key's character without and with Shift.
_LAYOUT = [
    ("`~", 0x0E), ("1!", 0x16), ("2@", 0x1E), ("3#", 0x26), ("4$", 0x25), ("5%", 0x2E), ("6^", 0x36),
    ("7&", 0x3D), ("8*", 0x3E), ("9(", 0x46), ("0)", 0x45), ("-_", 0x4E), ("=+", 0x55),
    ("qQ", 0x15), ("wW", 0x1D), ("eE", 0x24), ("rR", 0x2D), ("tT", 0x2C), ("yY", 0x35), ("uU", 0x3C),
    ("iI", 0x43), ("oO", 0x44), ("pP", 0x4D), ("[{", 0x54), ("]}", 0x5B), ("\\|", 0x5D),
    ("aA", 0x1C), ("sS", 0x1B), ("dD", 0x23), ("fF", 0x2B), ("gG", 0x34), ("hH", 0x33), ("jJ", 0x3B),
    ("kK", 0x42), ("lL", 0x4B), (";:", 0x4C), ("'\"", 0x52),
    ("zZ", 0x1A), ("xX", 0x22), ("cC", 0x21), ("vV", 0x2A), ("bB", 0x32), ("nN", 0x31), ("mM", 0x3A),
    (",<", 0x41), (".>", 0x49), ("/?", 0x4A), (" ", 0x29),
]
CHARS = {ch: (code, shifted == 1) for pair, code in _LAYOUT for shifted, ch in enumerate(pair)}
MODIFIERS = {"ctrl": "lctrl", "shift": "lshift", "alt": "lalt", "meta": "lalt", "super": "lgui"}
_CONTROL = {"\r": "enter", "\n": "enter", "\t": "tab", "\x7f": "backspace", "\x08": "backspace",
            "\x1b": "escape"}
_CONTROL_PUNCT = {"\x00": "space", "\x1c": "\\", "\x1d": "]", "\x1e": "6", "\x1f": "-"}


def press(code: int, modifiers: tuple[str, ...] = ()) -> list[int]:
    """One key pressed and released, inside presses of the modifier keys (names of KEYS)."""
    if code == PAUSE:
        return [PAUSE]
    mods = [KEYS[m] for m in dict.fromkeys(modifiers)]
    return mods + [code, code | BREAK] + [m | BREAK for m in reversed(mods)]


def for_char(ch: str, modifiers: tuple[str, ...] = ()) -> list[int]:
    """The keys that type a character on a US layout ([] for one it cannot type)."""
    if ch in _CONTROL:
        return press(KEYS[_CONTROL[ch]], modifiers)
    if ch in CHARS:
        code, shifted = CHARS[ch]
        return press(code, (*modifiers, "lshift") if shifted else modifiers)
    if len(ch) == 1 and (0x01 <= ord(ch) <= 0x1A or ch in _CONTROL_PUNCT):   # Ctrl+letter
        base = _CONTROL_PUNCT.get(ch) or chr(ord(ch) + 0x60)
        return press(KEYS["space"] if base == "space" else CHARS[base][0], (*modifiers, "lctrl"))
    return []


def for_name(name: str, modifiers: tuple[str, ...] = ()) -> list[int]:
    """A named key (KEYS) or a single character, with modifiers (names of KEYS)."""
    if name in KEYS:
        return press(KEYS[name], modifiers)
    if len(name) == 1:
        return for_char(name, modifiers)
    return []


# Textual's names of keys that differ from ours (character keys come with their character)
_TEXTUAL = {"page_up": "pageup", "page_down": "pagedown", "caps_lock": "capslock", "num_lock": "numlock",
            "scroll_lock": "scrolllock", "print_screen": "printscreen"}


def for_textual(key: str, character: str | None) -> list[int]:
    """The keys for a Textual key event (its key, "ctrl+shift+left", and its character)."""
    parts = key.split("+")
    base, mods = parts[-1], tuple(MODIFIERS[p] for p in parts[:-1] if p in MODIFIERS)
    base = _TEXTUAL.get(base, base)
    if base in KEYS:
        return press(KEYS[base], mods)
    if len(base) == 1 and for_char(base):
        return for_char(base, mods)
    if character and len(character) == 1:       # punctuation ("full_stop", "ctrl+comma" ...)
        return for_char(character, mods if character.isprintable() else ())
    return []


# ---- a terminal's bytes (hvtui run --console vga) ----
_CSI_FINAL = {"A": "up", "B": "down", "C": "right", "D": "left", "H": "home", "F": "end",
              "P": "f1", "Q": "f2", "R": "f3", "S": "f4"}
_CSI_TILDE = {1: "home", 2: "insert", 3: "delete", 4: "end", 5: "pageup", 6: "pagedown", 7: "home",
              8: "end", 11: "f1", 12: "f2", 13: "f3", 14: "f4", 15: "f5", 17: "f6", 18: "f7", 19: "f8",
              20: "f9", 21: "f10", 23: "f11", 24: "f12"}


def _xterm_mods(param: str) -> tuple[str, ...]:
    """xterm's modifier parameter (1 + shift 1, alt 2, ctrl 4)."""
    try:
        m = int(param) - 1
    except ValueError:
        return ()
    return tuple(name for bit, name in ((1, "lshift"), (2, "lalt"), (4, "lctrl")) if m & bit)


class TerminalKeys:
    """Turns what a terminal in raw mode sends (UTF-8, escape sequences for cursor, editing
    and function keys with xterm's modifiers, ESC + key for Alt) into keys. A lone ESC at
    the end of a read is the Escape key."""

    def __init__(self):
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, data: bytes) -> list[int]:
        text = self._decoder.decode(data)
        keys: list[int] = []
        i = 0
        while i < len(text):
            ch = text[i]
            if ch != "\x1b" or i + 1 == len(text):
                keys += for_char(ch)
                i += 1
                continue
            nxt = text[i + 1]
            if nxt in "[O":
                j = i + 2
                while j < len(text) and not ("@" <= text[j] <= "~"):
                    j += 1
                if j == len(text):          # cut off: nothing sensible to send
                    break
                keys += self._sequence(nxt, text[i + 2:j], text[j])
                i = j + 1
            else:                           # ESC + key: that key with Alt
                keys += for_char(nxt, ("lalt",)) if nxt != "\x1b" else for_char(nxt)
                i += 2
        return keys

    @staticmethod
    def _sequence(intro: str, params: str, final: str) -> list[int]:
        fields = params.split(";")
        mods = _xterm_mods(fields[1]) if len(fields) > 1 else ()
        if final == "~":
            try:
                name = _CSI_TILDE.get(int(fields[0] or 0))
            except ValueError:
                name = None
            return for_name(name, mods) if name else []
        if final == "Z":
            return for_name("tab", ("lshift",))
        name = _CSI_FINAL.get(final)
        return for_name(name, mods) if name else []
