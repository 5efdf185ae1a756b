module spike.ist/bench

go 1.24
