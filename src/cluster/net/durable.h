/*
 * Transitional: durable.c moved to the storage package (cluster/storage/durable.h). This
 * forwarder keeps blocks_store.c building while another branch rewrites it over the env;
 * `make layout` allows no other user and it goes once that branch has merged.
 */
#ifndef PETREL_CLUSTER_NET_DURABLE_FORWARD_H
#define PETREL_CLUSTER_NET_DURABLE_FORWARD_H

#include "cluster/storage/durable.h"

#endif
