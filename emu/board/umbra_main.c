// Umbra's board support for MicroPython's qemu port: the start-up a flight
// board has (heap, the disk mounted at /, boot.py and main.py, then the
// REPL), Ctrl-C on the REPL UART while code runs or sleeps, machine.reset()
// as a system reset that keeps the disk, a real-time clock, os.urandom's
// seed, and the `umbraboard` module (the disk's host file through ARM
// semihosting, the reset cause).
//
// Linked in with --wrap (emu/board/board.mk): main, exit (machine.reset and
// fatal errors), mp_hal_stdin_rx_chr, mp_hal_stdio_poll, mp_hal_delay_ms and
// mp_hal_get_random of the stock port are replaced by the __wrap_ versions
// here; the vendored sources are not changed.
#include <string.h>

#include "py/runtime.h"
#include "py/gc.h"
#include "py/mphal.h"
#include "py/stream.h"
#include "py/mperrno.h"
#include "shared/runtime/gchelper.h"
#include "shared/runtime/pyexec.h"
#include "shared/runtime/interrupt_char.h"

extern int uart_rx_chr(void);
uintptr_t ticks_ms(void);

// --- settings and what survives a reset ------------------------------------
// A block of RAM outside the image (neither .data nor .bss): the emulator
// writes the settings into it before boot (tools/emu.py: -device loader), and
// the reset record stays there across machine.reset() (a system reset does
// not clear RAM; a power-on starts it at zero).
#define UMBRA_SETTINGS_ADDR (0x00380000)
#define UMBRA_SETTINGS_MAGIC (0x554d4252)   // "UMBR"
#define UMBRA_RESET_MAGIC (0x52535421)      // "RST!"
#define UMBRA_HEAP_MAX (1024 * 1024)
#define UMBRA_HEAP_DEFAULT (256 * 1024)

typedef struct _umbra_settings_t {
    uint32_t magic;        // UMBRA_SETTINGS_MAGIC when the emulator set these
    uint32_t heap_bytes;   // the GC heap (a cap, for tests and benches)
    uint32_t seed;         // per power-on, for os.urandom
    uint32_t reserved[5];
    // kept across a reset (written by the firmware)
    uint32_t reset_magic;  // UMBRA_RESET_MAGIC: the last reset was machine.reset()
    uint32_t resets;       // resets since power-on
    uint32_t rtc_ms;       // the real-time clock at the reset (ms since 2000-01-01)
    uint32_t rtc_s;
} umbra_settings_t;

#define SETTINGS ((volatile umbra_settings_t *)UMBRA_SETTINGS_ADDR)

static uint32_t umbra_heap[UMBRA_HEAP_MAX / sizeof(uint32_t)];
static const char *umbra_reset_cause = "power_on";
static uint32_t rtc_base_s, rtc_base_ms;   // the clock's reading at this boot's ticks 0
static uint32_t random_state;

// --- the real-time clock ---------------------------------------------------

void umbra_rtc_get(uint32_t *seconds_since_2000, uint32_t *ms) {
    uint32_t t = ticks_ms() + rtc_base_ms;
    *seconds_since_2000 = rtc_base_s + t / 1000;
    *ms = t % 1000;
}

uint64_t mp_hal_time_ns(void) {
    uint32_t s, ms;
    umbra_rtc_get(&s, &ms);
    return (uint64_t)s * 1000000000ull + (uint64_t)ms * 1000000ull;
}

// --- randomness ------------------------------------------------------------

void __wrap_mp_hal_get_random(size_t n, uint8_t *buf) {
    for (size_t i = 0; i < n; ++i) {
        // xorshift32: not for keys, but a new sequence at every boot
        random_state ^= random_state << 13;
        random_state ^= random_state >> 17;
        random_state ^= random_state << 5;
        buf[i] = random_state >> 24;
    }
}

// --- the REPL UART: Ctrl-C while code runs, a queue for what is not ---------

#define REPL_RING (256)
static uint8_t repl_ring[REPL_RING];
static volatile uint16_t repl_head, repl_tail;

static void repl_poll(void) {
    int c;
    while ((c = uart_rx_chr()) >= 0) {
        if (c == mp_interrupt_char) {
            mp_sched_keyboard_interrupt();
            continue;
        }
        uint16_t next = (repl_head + 1) % REPL_RING;
        if (next != repl_tail) {
            repl_ring[repl_head] = c;
            repl_head = next;
        }
    }
}

void umbra_vm_hook(void) {
    static uint32_t n;
    if ((++n & 31) == 0) {
        repl_poll();
    }
}

int __wrap_mp_hal_stdin_rx_chr(void) {
    for (uint32_t spins = 0;; ++spins) {
        repl_poll();
        if (repl_tail != repl_head) {
            int c = repl_ring[repl_tail];
            repl_tail = (repl_tail + 1) % REPL_RING;
            return c;
        }
        if (spins > 50000) {
            // nothing for a while: sleep to the next SysTick (1 ms), so an
            // idle board idles its host; while bytes come, keep asking
            __asm__ volatile ("wfi");
        }
    }
}

uintptr_t __wrap_mp_hal_stdio_poll(uintptr_t poll_flags) {
    uintptr_t ret = 0;
    repl_poll();
    if ((poll_flags & MP_STREAM_POLL_RD) && repl_tail != repl_head) {
        ret |= MP_STREAM_POLL_RD;
    }
    if (poll_flags & MP_STREAM_POLL_WR) {
        ret |= MP_STREAM_POLL_WR;
    }
    return ret;
}

void __wrap_mp_hal_delay_ms(mp_uint_t ms) {
    mp_uint_t start = mp_hal_ticks_ms();
    for (;;) {
        repl_poll();
        mp_handle_pending(true);   // a Ctrl-C raises KeyboardInterrupt here
        if (mp_hal_ticks_ms() - start >= ms) {
            return;
        }
        __asm__ volatile ("wfi");
    }
}

// --- reset -----------------------------------------------------------------

void __wrap_exit(int status) {
    (void)status;
    // machine.reset() (and a fatal error): a system reset, as a board does;
    // the disk is a file, the clock and the reset record stay in RAM
    uint32_t s, ms;
    umbra_rtc_get(&s, &ms);
    SETTINGS->rtc_s = s;
    SETTINGS->rtc_ms = ms;
    SETTINGS->reset_magic = UMBRA_RESET_MAGIC;
    SETTINGS->resets += 1;
    __asm__ volatile ("dsb");
    *(volatile uint32_t *)0xE000ED0C = 0x05FA0004;   // AIRCR: VECTKEY | SYSRESETREQ
    for (;;) {
    }
}

// --- start-up --------------------------------------------------------------

static void umbra_power_state(void) {
    volatile umbra_settings_t *st = SETTINGS;
    if (st->reset_magic == UMBRA_RESET_MAGIC) {
        umbra_reset_cause = "soft";
        rtc_base_s = st->rtc_s;
        rtc_base_ms = st->rtc_ms;
    } else {
        st->resets = 0;
    }
    st->reset_magic = 0;
    random_state = 0x9E3779B9u ^ (st->magic == UMBRA_SETTINGS_MAGIC ? st->seed : 0)
        ^ (st->resets * 0x85EBCA6Bu) ^ *(volatile uint32_t *)0xE000E018;   // SysTick CVR
    if (random_state == 0) {
        random_state = 1;
    }
}

static size_t umbra_heap_bytes(void) {
    volatile umbra_settings_t *st = SETTINGS;
    size_t n = UMBRA_HEAP_DEFAULT;
    if (st->magic == UMBRA_SETTINGS_MAGIC && st->heap_bytes >= 16 * 1024) {
        n = st->heap_bytes;
    }
    return n > UMBRA_HEAP_MAX ? UMBRA_HEAP_MAX : n & ~(size_t)15;
}

int __wrap_main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    umbra_power_state();
    mp_cstack_init_with_sp_here(MICROPY_STACK_SIZE);
    gc_init(umbra_heap, (char *)umbra_heap + umbra_heap_bytes());

    for (;;) {
        mp_init();
        // the disk at / (emu/board/_umbraboot.py, frozen into every image)
        pyexec_frozen_module("_umbraboot.py", false);
        int ret = 0;
        if (pyexec_mode_kind == PYEXEC_MODE_FRIENDLY_REPL) {
            ret = pyexec_file_if_exists("boot.py");
            if (!(ret & PYEXEC_FORCED_EXIT)) {
                ret = pyexec_file_if_exists("main.py");
            }
        }
        if (!(ret & PYEXEC_FORCED_EXIT)) {
            for (;;) {
                if (pyexec_mode_kind == PYEXEC_MODE_RAW_REPL) {
                    if (pyexec_raw_repl() != 0) {
                        break;
                    }
                } else {
                    if (pyexec_friendly_repl() != 0) {
                        break;
                    }
                }
            }
        }
        mp_printf(&mp_plat_print, "MPY: soft reboot\n");
        gc_sweep_all();
        mp_deinit();
        umbra_reset_cause = "soft";
    }
}

// --- the umbraboard module ---------------------------------------------------

// ARM semihosting (the emulator's host calls): the disk image is a host file.
static int semihost(int op, void *arg) {
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile ("bkpt 0xab" : "+r" (r0) : "r" (r1) : "memory");
    return r0;
}

#define SYS_OPEN (0x01)
#define SYS_WRITE (0x05)
#define SYS_READ (0x06)
#define SYS_SEEK (0x0a)
#define SYS_FLEN (0x0c)

// open(path, mode) -> handle; mode as semihosting's (3: "r+b")
static mp_obj_t umbraboard_open(mp_obj_t path_in, mp_obj_t mode_in) {
    size_t len;
    const char *path = mp_obj_str_get_data(path_in, &len);
    uint32_t args[3] = { (uint32_t)path, (uint32_t)mp_obj_get_int(mode_in), len };
    int h = semihost(SYS_OPEN, args);
    if (h < 0) {
        mp_raise_OSError(MP_ENOENT);
    }
    return MP_OBJ_NEW_SMALL_INT(h);
}
static MP_DEFINE_CONST_FUN_OBJ_2(umbraboard_open_obj, umbraboard_open);

static mp_obj_t umbraboard_size(mp_obj_t h_in) {
    uint32_t args[1] = { (uint32_t)mp_obj_get_int(h_in) };
    return mp_obj_new_int(semihost(SYS_FLEN, args));
}
static MP_DEFINE_CONST_FUN_OBJ_1(umbraboard_size_obj, umbraboard_size);

static void umbraboard_seek(mp_obj_t h_in, mp_obj_t pos_in) {
    uint32_t args[2] = { (uint32_t)mp_obj_get_int(h_in), (uint32_t)mp_obj_get_int(pos_in) };
    if (semihost(SYS_SEEK, args) != 0) {
        mp_raise_OSError(MP_EIO);
    }
}

// readinto(handle, pos, buf): fill buf from the file at pos
static mp_obj_t umbraboard_readinto(mp_obj_t h_in, mp_obj_t pos_in, mp_obj_t buf_in) {
    mp_buffer_info_t buf;
    mp_get_buffer_raise(buf_in, &buf, MP_BUFFER_WRITE);
    umbraboard_seek(h_in, pos_in);
    uint32_t args[3] = { (uint32_t)mp_obj_get_int(h_in), (uint32_t)buf.buf, buf.len };
    int left = semihost(SYS_READ, args);
    if (left < 0) {
        mp_raise_OSError(MP_EIO);
    }
    if (left > 0) {   // past the end of the file: erased flash
        memset((uint8_t *)buf.buf + buf.len - left, 0xff, left);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_3(umbraboard_readinto_obj, umbraboard_readinto);

// write(handle, pos, buf): buf into the file at pos
static mp_obj_t umbraboard_write(mp_obj_t h_in, mp_obj_t pos_in, mp_obj_t buf_in) {
    mp_buffer_info_t buf;
    mp_get_buffer_raise(buf_in, &buf, MP_BUFFER_READ);
    umbraboard_seek(h_in, pos_in);
    uint32_t args[3] = { (uint32_t)mp_obj_get_int(h_in), (uint32_t)buf.buf, buf.len };
    if (semihost(SYS_WRITE, args) != 0) {
        mp_raise_OSError(MP_EIO);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_3(umbraboard_write_obj, umbraboard_write);

static mp_obj_t umbraboard_reset_cause(void) {
    return mp_obj_new_str(umbra_reset_cause, strlen(umbra_reset_cause));
}
static MP_DEFINE_CONST_FUN_OBJ_0(umbraboard_reset_cause_obj, umbraboard_reset_cause);

static mp_obj_t umbraboard_heap_bytes(void) {
    return mp_obj_new_int(umbra_heap_bytes());
}
static MP_DEFINE_CONST_FUN_OBJ_0(umbraboard_heap_bytes_obj, umbraboard_heap_bytes);

static const mp_rom_map_elem_t umbraboard_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_umbraboard) },
    { MP_ROM_QSTR(MP_QSTR_open), MP_ROM_PTR(&umbraboard_open_obj) },
    { MP_ROM_QSTR(MP_QSTR_size), MP_ROM_PTR(&umbraboard_size_obj) },
    { MP_ROM_QSTR(MP_QSTR_readinto), MP_ROM_PTR(&umbraboard_readinto_obj) },
    { MP_ROM_QSTR(MP_QSTR_write), MP_ROM_PTR(&umbraboard_write_obj) },
    { MP_ROM_QSTR(MP_QSTR_reset_cause), MP_ROM_PTR(&umbraboard_reset_cause_obj) },
    { MP_ROM_QSTR(MP_QSTR_heap_bytes), MP_ROM_PTR(&umbraboard_heap_bytes_obj) },
};
static MP_DEFINE_CONST_DICT(umbraboard_globals, umbraboard_globals_table);

const mp_obj_module_t umbraboard_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&umbraboard_globals,
};
MP_REGISTER_MODULE(MP_QSTR_umbraboard, umbraboard_module);
