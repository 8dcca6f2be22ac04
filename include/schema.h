/*
 * schema.h - a JSON Schema validator for task contexts (a subset of draft 7).
 *
 * Supported keywords: type (string or array of types), required, properties,
 * additionalProperties (boolean or schema), enum, const, minLength,
 * maxLength, pattern (POSIX extended regex), minimum, maximum,
 * exclusiveMinimum, exclusiveMaximum (draft-7 numeric form), items (schema
 * or array of schemas), minItems, maxItems, format (email, uri, date-time,
 * date, time, hostname, ipv4, ipv6, uuid; other formats are not asserted),
 * default (inserted into objects for absent properties before validation),
 * and the annotations title, description, $schema, $id, $comment, examples.
 * Boolean schemas true/false are accepted.  Anything else is rejected when
 * the template loads.
 */
#ifndef TASKERD_SCHEMA_H
#define TASKERD_SCHEMA_H

#include <stddef.h>
#include <jansson.h>

/* Check that a schema uses only supported keywords with well-formed
 * values (and that every pattern compiles).  Returns 0, or -1 with a reason
 * naming the JSON path inside the schema, e.g. "/properties/email/pattern:
 * invalid regular expression". */
int	 schema_check(const json_t *schema, char *err, size_t errlen);
/* The same, and where the problem is as a JSON pointer into schema ("" for
 * its root) in where, so that a loader can point at its line. */
int	 schema_check_at(const json_t *schema, char *err, size_t errlen,
	    char *where, size_t wherelen);

/* Insert defaults into instance (objects only, recursively through
 * properties and items, for properties that are absent), then validate.
 * Returns a new JSON array of every violation, each
 * {"path": "$.user_info.email", "message": "..."}; empty when valid. */
json_t	*schema_validate(const json_t *schema, json_t *instance);

#endif
