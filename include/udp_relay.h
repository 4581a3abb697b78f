#ifndef RP_UDP_RELAY_H
#define RP_UDP_RELAY_H
#endif
