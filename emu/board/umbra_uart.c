// Included by extmod/machine_uart.c (MICROPY_PY_MACHINE_UART_INCLUDEFILE):
// machine.UART(id) for the mps2 boards' spare CMSDK APB UARTs (UART0 is the
// REPL). Reads never block: read()/readinto() return what is waiting (None
// when nothing), any() says how much is, and select.poll sees it. The
// hardware holds one received byte; a ring buffer per UART takes them as
// fast as the emulator hands them over.
#include "py/mperrno.h"
#include "py/stream.h"

#define UMBRA_UART_COUNT (5)
#define UMBRA_UART_RING (1024)
#define UART_STATE_TXFULL (1 << 0)
#define UART_STATE_RXFULL (1 << 1)
#define UART_CTRL_TX_EN (1 << 0)
#define UART_CTRL_RX_EN (1 << 1)

typedef struct _umbra_uart_regs_t {
    volatile uint32_t DATA;
    volatile uint32_t STATE;
    volatile uint32_t CTRL;
    volatile uint32_t INTSTATUS;
    volatile uint32_t BAUDDIV;
} umbra_uart_regs_t;

typedef struct _machine_uart_obj_t {
    mp_obj_base_t base;
    uint8_t id;
    umbra_uart_regs_t *regs;
    uint32_t baudrate;
    uint16_t head, tail;            // ring: bytes [tail, head)
    uint8_t ring[UMBRA_UART_RING];
} machine_uart_obj_t;

// Outside the GC heap: a UART and what it received outlive the objects
// Python holds (and a soft reset).
static machine_uart_obj_t umbra_uarts[UMBRA_UART_COUNT];

static umbra_uart_regs_t *umbra_uart_base(int id) {
    static const uint32_t base[UMBRA_UART_COUNT] = {
        0x40004000, 0x40005000, 0x40006000, 0x40007000, 0x40009000,
    };
    return (umbra_uart_regs_t *)base[id];
}

static mp_uint_t umbra_uart_waiting(machine_uart_obj_t *self) {
    return (mp_uint_t)((self->head - self->tail) & (UMBRA_UART_RING - 1));
}

// Move what the UART holds into the ring; keep asking a little while the
// emulator keeps handing bytes over, so a frame comes in one call. A full
// ring leaves the rest in the line (the emulator holds it back).
static void umbra_uart_drain(machine_uart_obj_t *self) {
    for (int idle = 0; idle < 64;) {
        if (umbra_uart_waiting(self) >= UMBRA_UART_RING - 1) {
            return;
        }
        if (self->regs->STATE & UART_STATE_RXFULL) {
            self->ring[self->head] = self->regs->DATA;
            self->head = (self->head + 1) & (UMBRA_UART_RING - 1);
            idle = 0;
        } else {
            ++idle;
        }
    }
}

#define MICROPY_PY_MACHINE_UART_CLASS_CONSTANTS

static void mp_machine_uart_print(const mp_print_t *print, mp_obj_t self_in, mp_print_kind_t kind) {
    machine_uart_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_printf(print, "UART(%u, baudrate=%u)", self->id, (unsigned)self->baudrate);
}

static void mp_machine_uart_init_helper(machine_uart_obj_t *self, size_t n_args, const mp_obj_t *pos_args, mp_map_t *kw_args) {
    enum { ARG_baudrate, ARG_bits, ARG_parity, ARG_stop, ARG_timeout, ARG_timeout_char };
    static const mp_arg_t allowed_args[] = {
        { MP_QSTR_baudrate, MP_ARG_INT, {.u_int = 115200} },
        { MP_QSTR_bits, MP_ARG_INT, {.u_int = 8} },
        { MP_QSTR_parity, MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
        { MP_QSTR_stop, MP_ARG_INT, {.u_int = 1} },
        { MP_QSTR_timeout, MP_ARG_KW_ONLY | MP_ARG_INT, {.u_int = 0} },
        { MP_QSTR_timeout_char, MP_ARG_KW_ONLY | MP_ARG_INT, {.u_int = 0} },
    };
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
    mp_arg_parse_all(n_args, pos_args, kw_args, MP_ARRAY_SIZE(allowed_args), allowed_args, args);
    if (args[ARG_timeout].u_int != 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("only timeout=0 (non-blocking)"));
    }
    self->baudrate = args[ARG_baudrate].u_int;
    self->regs->BAUDDIV = 16;
    self->regs->CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN;
}

static mp_obj_t mp_machine_uart_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw, const mp_obj_t *args) {
    mp_arg_check_num(n_args, n_kw, 1, MP_OBJ_FUN_ARGS_MAX, true);
    mp_int_t id = mp_obj_get_int(args[0]);
    if (id < 1 || id >= UMBRA_UART_COUNT) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("UART(%d) doesn't exist (1..4; 0 is the REPL)"), (int)id);
    }
    machine_uart_obj_t *self = &umbra_uarts[id];
    if (self->base.type == NULL) {
        self->base.type = type;
        self->id = id;
        self->regs = umbra_uart_base(id);
        self->head = self->tail = 0;
    }
    mp_map_t kw_args;
    mp_map_init_fixed_table(&kw_args, n_kw, args + n_args);
    mp_machine_uart_init_helper(self, n_args - 1, args + 1, &kw_args);
    return MP_OBJ_FROM_PTR(self);
}

static void mp_machine_uart_deinit(machine_uart_obj_t *self) {
    self->regs->CTRL = 0;
}

static mp_int_t mp_machine_uart_any(machine_uart_obj_t *self) {
    umbra_uart_drain(self);
    return umbra_uart_waiting(self);
}

static bool mp_machine_uart_txdone(machine_uart_obj_t *self) {
    return !(self->regs->STATE & UART_STATE_TXFULL);
}

static mp_uint_t mp_machine_uart_read(mp_obj_t self_in, void *buf_in, mp_uint_t size, int *errcode) {
    machine_uart_obj_t *self = MP_OBJ_TO_PTR(self_in);
    umbra_uart_drain(self);
    mp_uint_t n = 0;
    uint8_t *buf = buf_in;
    while (n < size && self->tail != self->head) {
        buf[n++] = self->ring[self->tail];
        self->tail = (self->tail + 1) & (UMBRA_UART_RING - 1);
    }
    if (n == 0 && size > 0) {
        *errcode = MP_EAGAIN;    // nothing waiting: read() gives None
        return MP_STREAM_ERROR;
    }
    return n;
}

static mp_uint_t mp_machine_uart_write(mp_obj_t self_in, const void *buf_in, mp_uint_t size, int *errcode) {
    machine_uart_obj_t *self = MP_OBJ_TO_PTR(self_in);
    const uint8_t *buf = buf_in;
    for (mp_uint_t i = 0; i < size; ++i) {
        while (self->regs->STATE & UART_STATE_TXFULL) {
        }
        self->regs->DATA = buf[i];
    }
    return size;
}

static mp_uint_t mp_machine_uart_ioctl(mp_obj_t self_in, mp_uint_t request, uintptr_t arg, int *errcode) {
    machine_uart_obj_t *self = MP_OBJ_TO_PTR(self_in);
    if (request == MP_STREAM_POLL) {
        mp_uint_t ret = 0;
        umbra_uart_drain(self);
        if ((arg & MP_STREAM_POLL_RD) && umbra_uart_waiting(self)) {
            ret |= MP_STREAM_POLL_RD;
        }
        if ((arg & MP_STREAM_POLL_WR) && !(self->regs->STATE & UART_STATE_TXFULL)) {
            ret |= MP_STREAM_POLL_WR;
        }
        return ret;
    }
    if (request == MP_STREAM_FLUSH) {
        return 0;
    }
    *errcode = MP_EINVAL;
    return MP_STREAM_ERROR;
}
