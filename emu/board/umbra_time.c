// Included by extmod/modtime.c (MICROPY_PY_TIME_INCLUDEFILE): the port's
// time() and localtime() from the board's real-time clock (umbra_main.c).
#include "shared/timeutils/timeutils.h"

static mp_obj_t mp_time_time_get(void) {
    uint32_t s, ms;
    umbra_rtc_get(&s, &ms);
    return mp_obj_new_int_from_uint(s);
}

static void mp_time_localtime_get(timeutils_struct_time_t *tm) {
    uint32_t s, ms;
    umbra_rtc_get(&s, &ms);
    timeutils_seconds_since_2000_to_struct_time(s, tm);
}
