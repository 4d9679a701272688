/* serial.h — serial numbers that name one object for the life of the
 * process: a cache entry made with an object remembers its serial, and
 * answers only while that very object is the one asked about (a pointer
 * could be reused by a new object once the old is freed; a serial never
 * is). */
#ifndef SCRIP_SERIAL_H
#define SCRIP_SERIAL_H

#include <stdint.h>

/* A number never returned before in this process, never 0. Thread-safe. */
uint64_t scrip_serial_next(void);

#endif
