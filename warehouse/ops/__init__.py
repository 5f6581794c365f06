"""Operations: compaction and vacuum, retention (expire), doctor, and sync between warehouses."""
