#ifndef RP_LISTENER_H
#define RP_LISTENER_H
#endif
