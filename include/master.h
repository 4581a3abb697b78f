#ifndef RP_MASTER_H
#define RP_MASTER_H
#endif
