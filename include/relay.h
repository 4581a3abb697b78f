#ifndef RP_RELAY_H
#define RP_RELAY_H
#endif
