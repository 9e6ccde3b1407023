"""Cases and the people who work them: the cases table's one writer, users and roles, the audit trail."""
