module selfheal-lb/cluster/build/pause

go 1.26.0
