package api

import (
	"context"
	"strconv"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/runnel-dev/runnel/internal/engine"
)

// textCheck refuses RPC requests with a string field the store cannot keep
// (see engine.CheckText): every string of every request message, nested
// messages, lists and map keys and values included, so no RPC (worker ones
// too) can carry a NUL into PostgreSQL. Protobuf already refuses strings
// that are not UTF-8; the check is for NUL, and names the field.
type textCheck struct{}

func (textCheck) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if m, ok := req.Any().(proto.Message); ok {
			if err := checkMessageText(m.ProtoReflect(), ""); err != nil {
				return nil, err
			}
		}
		return next(ctx, req)
	}
}

func (textCheck) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (textCheck) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		return next(ctx, checkedConn{conn})
	}
}

// checkedConn checks each message a streaming handler receives.
type checkedConn struct{ connect.StreamingHandlerConn }

func (c checkedConn) Receive(msg any) error {
	if err := c.StreamingHandlerConn.Receive(msg); err != nil {
		return err
	}
	if m, ok := msg.(proto.Message); ok {
		return checkMessageText(m.ProtoReflect(), "")
	}
	return nil
}

// checkMessageText runs engine.CheckText on every string in m; prefix is
// the path of m in the request, for the error.
func checkMessageText(m protoreflect.Message, prefix string) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + fd.JSONName()
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				key := k.String()
				if fd.MapKey().Kind() == protoreflect.StringKind {
					if err = engine.CheckText(name+" key", key); err != nil {
						return false
					}
				}
				err = checkValueText(fd.MapValue(), mv, name+"["+strconv.Quote(key)+"]")
				return err == nil
			})
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = checkValueText(fd, l.Get(i), name+"["+strconv.Itoa(i)+"]")
			}
		default:
			err = checkValueText(fd, v, name)
		}
		return err == nil
	})
	return err
}

func checkValueText(fd protoreflect.FieldDescriptor, v protoreflect.Value, name string) error {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return engine.CheckText("field "+name, v.String())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return checkMessageText(v.Message(), name+".")
	}
	return nil
}
