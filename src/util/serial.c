/* serial.c — one process-wide counter (serial.h). */
#include "util/serial.h"

#include <stdatomic.h>

static atomic_uint_fast64_t next_serial = 1;

uint64_t scrip_serial_next(void)
{
	return (uint64_t)atomic_fetch_add(&next_serial, 1);
}
