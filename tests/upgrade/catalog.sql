-- One line per property of every object the extension owns (definitions,
-- columns, defaults, constraints, indexes, triggers, policies, grants,
-- comments), sorted: two databases with equal output have the same extension.
WITH members AS (
    SELECT d.classid, d.objid
    FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid
    WHERE e.extname = 'kakunin_pg' AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
), rels AS (
    SELECT c.oid, c.oid::regclass::text AS name, c.relkind, c.relacl
    FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
)
SELECT line FROM (
    SELECT 'object ' || pg_describe_object(classid, objid, 0) AS line FROM members
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure || ' ' || pg_get_functiondef(p.oid)
           || ' acl=' || coalesce(p.proacl::text, '-') || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
    FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
    UNION ALL
    SELECT 'relation ' || name || ' kind=' || relkind::text || ' acl=' || coalesce(relacl::text, '-')
           || ' comment=' || coalesce(obj_description(oid, 'pg_class'), '-') FROM rels
    UNION ALL
    SELECT 'column ' || r.name || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
           || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
           || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
           || ' acl=' || coalesce(a.attacl::text, '-') || ' comment=' || coalesce(col_description(r.oid, a.attnum), '-')
    FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef ad ON ad.adrelid = r.oid AND ad.adnum = a.attnum
    UNION ALL
    SELECT 'constraint ' || r.name || ' ' || pg_get_constraintdef(c.oid)
    FROM rels r JOIN pg_constraint c ON c.conrelid = r.oid
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM rels r JOIN pg_index i ON i.indrelid = r.oid
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM rels r JOIN pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
    UNION ALL
    SELECT 'policy ' || p.schemaname || '.' || p.tablename || ' ' || p.policyname || ' ' || p.cmd || ' '
           || p.roles::text || ' ' || coalesce(p.qual, '-') || ' ' || coalesce(p.with_check, '-')
    FROM pg_policies p WHERE (p.schemaname || '.' || p.tablename)::regclass IN (SELECT oid FROM rels)
    UNION ALL
    SELECT 'rls ' || r.name || ' ' || c.relrowsecurity || ' ' || c.relforcerowsecurity
    FROM rels r JOIN pg_class c ON c.oid = r.oid WHERE r.relkind = 'r'
) lines ORDER BY line;
