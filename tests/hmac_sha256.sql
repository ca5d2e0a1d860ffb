-- hmac_sha256(data, key): HMAC-SHA256 (RFC 2104) over core sha256(), for the
-- pgTAP suite and the benchmark: PostgreSQL builds without OpenSSL (the
-- PostgreSQL 18 wheel) have no pgcrypto. Created in the first schema of the
-- search_path (public).
CREATE FUNCTION hmac_sha256(data text, key text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE k bytea := convert_to(key, 'UTF8'); ipad bytea; opad bytea; i int;
BEGIN
    IF length(k) > 64 THEN k := sha256(k); END IF;
    k := k || decode(repeat('00', 64 - length(k)), 'hex');
    ipad := k; opad := k;
    FOR i IN 0..63 LOOP
        ipad := set_byte(ipad, i, get_byte(k, i) # 54);
        opad := set_byte(opad, i, get_byte(k, i) # 92);
    END LOOP;
    RETURN sha256(opad || sha256(ipad || convert_to(data, 'UTF8')));
END $$;
